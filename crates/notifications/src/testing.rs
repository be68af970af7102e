//! A real SMTP server for tests, on a loopback port: it speaks enough of RFC 5321 for a
//! client to deliver (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT), keeps what it
//! receives, and can be told to refuse the next messages with a reply of one's choice (a
//! 4xx or 5xx), as a mail server that is having trouble does.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The largest message the sink takes, so that a runaway client cannot fill memory.
const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;

/// One message the sink accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The envelope's sender (`MAIL FROM`), without the angle brackets.
    pub from: String,
    /// The envelope's recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The message as sent, headers and body, with dot-stuffing undone.
    pub data: String,
}

impl ReceivedMail {
    /// The first header named `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let headers = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let mut found: Option<String> = None;
        for line in headers.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(value) = &mut found {
                    value.push_str(line.trim_end());
                    continue;
                }
            } else if found.is_some() {
                break;
            }
            if let Some((header, value)) = line.split_once(':')
                && header.eq_ignore_ascii_case(name)
            {
                found = Some(value.trim().to_owned());
            }
        }
        found
    }

    pub fn subject(&self) -> Option<String> {
        self.header("Subject")
    }

    /// The body as sent, after the headers.
    pub fn raw_body(&self) -> &str {
        self.data.split_once("\r\n\r\n").map_or("", |(_, body)| body)
    }

    /// The body as the recipient reads it: quoted-printable decoded (which a client picks
    /// for text with long lines), line ends as `\n`.
    pub fn body(&self) -> String {
        let quoted = self
            .header("Content-Transfer-Encoding")
            .is_some_and(|encoding| encoding.eq_ignore_ascii_case("quoted-printable"));
        let raw = self.raw_body();
        let text = if quoted { decode_quoted_printable(raw) } else { raw.to_owned() };
        text.replace("\r\n", "\n")
    }
}

/// Undoes quoted-printable (RFC 2045 §6.7): `=` at a line's end joins it to the next,
/// `=XX` is the byte XX.
fn decode_quoted_printable(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] != b'=' {
            decoded.push(bytes[index]);
            index += 1;
            continue;
        }
        let rest = &bytes[index + 1..];
        if rest.starts_with(b"\r\n") {
            index += 3;
        } else if rest.starts_with(b"\n") {
            index += 2;
        } else if let Some(byte) =
            rest.get(..2).and_then(|hex| std::str::from_utf8(hex).ok()).and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            decoded.push(byte);
            index += 3;
        } else {
            decoded.push(b'=');
            index += 1;
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[derive(Debug, Default)]
struct SinkState {
    received: Vec<ReceivedMail>,
    /// How many more messages to refuse, and with what reply.
    refuse: Option<(usize, String)>,
    refused: usize,
}

/// An SMTP server on 127.0.0.1 that keeps what it is sent. Stops when dropped.
#[derive(Debug)]
pub struct SmtpSink {
    address: SocketAddr,
    state: Arc<Mutex<SinkState>>,
    task: JoinHandle<()>,
}

impl SmtpSink {
    /// Listens on a free loopback port.
    pub async fn start() -> std::io::Result<SmtpSink> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let state = Arc::new(Mutex::new(SinkState::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    if let Err(error) = converse(stream, state).await {
                        tracing::debug!(%error, "an SMTP conversation with the sink ended");
                    }
                });
            }
        });
        Ok(SmtpSink { address, state, task })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `smtp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.address)
    }

    /// Refuses the next `messages` messages at the end of their DATA with `reply` (e.g.
    /// `451 4.3.0 try again later`).
    pub fn refuse_next(&self, messages: usize, reply: &str) {
        self.lock().refuse = Some((messages, reply.to_owned()));
    }

    /// The messages accepted so far, in order.
    pub fn received(&self) -> Vec<ReceivedMail> {
        self.lock().received.clone()
    }

    /// How many messages were refused.
    pub fn refused(&self) -> usize {
        self.lock().refused
    }

    /// Waits until at least `count` messages were accepted, for at most `timeout`, and
    /// answers what was received by then.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let received = self.received();
            if received.len() >= count || tokio::time::Instant::now() >= deadline {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One client's session.
async fn converse(stream: TcpStream, state: Arc<Mutex<SinkState>>) -> std::io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    writer.write_all(b"220 localhost eventshop test sink ESMTP\r\n").await?;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let command = String::from_utf8_lossy(&line).trim_end().to_owned();
        let verb = command.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "EHLO" | "HELO" => "250 localhost".to_owned(),
            "MAIL" => {
                from = Some(address_of(&command));
                to.clear();
                "250 2.1.0 OK".to_owned()
            }
            "RCPT" if from.is_some() => {
                to.push(address_of(&command));
                "250 2.1.5 OK".to_owned()
            }
            "RCPT" => "503 5.5.1 MAIL first".to_owned(),
            "DATA" if from.is_some() && !to.is_empty() => {
                writer.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                let data = read_data(&mut reader).await?;
                let mut state = state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let reply = match &mut state.refuse {
                    Some((remaining, reply)) if *remaining > 0 => {
                        *remaining -= 1;
                        Some(reply.clone())
                    }
                    _ => None,
                };
                match reply {
                    Some(reply) => {
                        state.refused += 1;
                        reply
                    }
                    None => {
                        let mail = ReceivedMail { from: from.take().unwrap_or_default(), to: to.clone(), data };
                        state.received.push(mail);
                        "250 2.0.0 OK queued".to_owned()
                    }
                }
            }
            "DATA" => "503 5.5.1 MAIL and RCPT first".to_owned(),
            "RSET" => {
                from = None;
                to.clear();
                "250 2.0.0 OK".to_owned()
            }
            "NOOP" => "250 2.0.0 OK".to_owned(),
            "QUIT" => {
                writer.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => "502 5.5.2 Command not implemented".to_owned(),
        };
        writer.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}

/// The address in `MAIL FROM:<a@b> ...` or `RCPT TO:<a@b>`.
fn address_of(command: &str) -> String {
    let start = command.find('<').map_or(0, |index| index + 1);
    let end = command[start..].find('>').map_or(command.len(), |index| start + index);
    command[start..end].to_owned()
}

/// The message after DATA, up to the line with a single dot.
async fn read_data<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> std::io::Result<String> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the client left during DATA"));
        }
        if line == b".\r\n" || line == b".\n" {
            break;
        }
        let unstuffed = if line.starts_with(b"..") { &line[1..] } else { &line[..] };
        if data.len() + unstuffed.len() > MAX_MESSAGE_BYTES {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "the message is too large"));
        }
        data.extend_from_slice(unstuffed);
    }
    // The final CRLF belongs to the terminator, not the message.
    if data.ends_with(b"\r\n") {
        data.truncate(data.len() - 2);
    }
    Ok(String::from_utf8_lossy(&data).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_printable_is_decoded() {
        assert_eq!(decode_quoted_printable("20.00 =\r\nEUR =3D =C3=A9, a=\nb, =ZZ"), "20.00 EUR = \u{e9}, ab, =ZZ");
    }

    #[test]
    fn headers_are_found_by_name_and_unfolded() {
        let mail = ReceivedMail {
            from: "shop@shop.test".to_owned(),
            to: vec!["ann@shop.test".to_owned()],
            data: "Subject: Your order\r\n is here\r\nFrom: shop@shop.test\r\n\r\nHello\r\n".to_owned(),
        };
        assert_eq!(mail.subject().as_deref(), Some("Your order is here"));
        assert_eq!(mail.header("from").as_deref(), Some("shop@shop.test"));
        assert_eq!(mail.header("To"), None);
        assert_eq!(mail.body(), "Hello\n");
    }
}
