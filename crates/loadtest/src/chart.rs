//! The HTML report: the figures of the text report as tables, and three charts over the
//! seconds of the run (throughput; request latency; placement → confirmed), drawn by
//! plotters as inline SVG, so the page is one file with nothing to fetch and no fonts to
//! install.

use std::fmt::Write as _;

use plotters::prelude::*;

use crate::report::{Report, SecondReport};

const WIDTH: u32 = 960;
const HEIGHT: u32 = 320;

/// One line of a chart: its legend, colour, and which axis it belongs to.
struct Line<'a> {
    label: &'a str,
    color: RGBColor,
    /// None where the second has no value (no order confirmed in it): no point is drawn.
    value: fn(&SecondReport) -> Option<f64>,
    right_axis: bool,
}

/// The whole page.
pub(crate) fn html(report: &Report) -> String {
    let mut page = String::new();
    let title = format!("eventshop loadtest: {} scenario, {} users", report.scenario, report.users);
    let _ = write!(
        page,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>\
         body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin:1em 0}}\
         td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:right}}td:first-child,th:first-child\
         {{text-align:left}}.bad{{color:#b00;font-weight:bold}}</style></head><body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    let _ = write!(
        page,
        "<p>{} against {}: {} s (ramp {} s), {:.1} s from the first start to the last end.</p>\n\
         <p><b>{:.1} requests/s</b> ({} requests), <b>{:.2} confirmed orders/s</b> ({} placed, {} confirmed, \
         {} rejected, {} stuck), <span class=\"{}\">{} errors</span>.</p>\n",
        escape(&report.scenario),
        escape(&report.url),
        report.duration_s,
        report.ramp_s,
        report.elapsed_s,
        report.requests_per_second,
        report.requests,
        report.orders_per_second,
        report.orders.placed,
        report.orders.confirmed,
        report.orders.rejected.values().sum::<u64>(),
        report.orders.timed_out,
        if report.errors > 0 { "bad" } else { "" },
        report.errors,
    );
    if let Some(check) = &report.flash_sale {
        let class = if check.oversold { "bad" } else { "" };
        let _ =
            writeln!(page, "<p class=\"{class}\">Flash sale of {}: {}</p>", escape(&check.sku), escape(&check.verdict));
    }
    page.push_str(&charts(report));
    page.push_str("<h2>Latency (ms)</h2>\n<table><tr><th>endpoint</th><th>count</th><th>errors</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>\n");
    for (name, endpoint) in &report.endpoints {
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td></tr>",
            escape(name),
            endpoint.count,
            endpoint.errors,
            endpoint.p50,
            endpoint.p90,
            endpoint.p99,
            endpoint.max
        );
    }
    for (name, latency) in [
        ("placement → confirmed (client)", &report.order_confirm_ms),
        ("pending → confirmed (shop clock)", &report.order_confirm_shop_ms),
    ] {
        let _ = writeln!(
            page,
            "<tr><td>{name}</td><td>{}</td><td></td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td></tr>",
            latency.count, latency.p50, latency.p90, latency.p99, latency.max
        );
    }
    page.push_str("</table>\n<h2>Errors</h2>\n");
    if report.errors_by_kind.is_empty() {
        page.push_str("<p>None.</p>\n");
    } else {
        page.push_str("<table><tr><th>kind</th><th>count</th><th>first</th></tr>\n");
        for (kind, error) in &report.errors_by_kind {
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td></tr>",
                escape(kind),
                error.count,
                escape(&error.sample)
            );
        }
        page.push_str("</table>\n");
    }
    page.push_str("</body></html>\n");
    page
}

fn charts(report: &Report) -> String {
    let seconds = &report.timeline;
    let charts = [
        (
            "Throughput per second",
            "requests/s",
            "confirmed orders/s",
            vec![
                Line {
                    label: "requests/s",
                    color: BLUE,
                    value: |second| Some(second.requests as f64),
                    right_axis: false,
                },
                Line { label: "errors/s", color: RED, value: |second| Some(second.errors as f64), right_axis: false },
                Line {
                    label: "confirmed orders/s (right)",
                    color: GREEN,
                    value: |second| Some(second.orders_confirmed as f64),
                    right_axis: true,
                },
            ],
        ),
        (
            "Request latency, all endpoints (ms)",
            "ms",
            "",
            vec![
                Line {
                    label: "p50",
                    color: BLUE,
                    value: |second| (second.requests > 0).then_some(second.latency_p50_ms),
                    right_axis: false,
                },
                Line {
                    label: "p99",
                    color: RED,
                    value: |second| (second.requests > 0).then_some(second.latency_p99_ms),
                    right_axis: false,
                },
            ],
        ),
        (
            "Placement → confirmed, orders confirmed in that second (ms)",
            "ms",
            "",
            vec![
                Line {
                    label: "p50",
                    color: BLUE,
                    value: |second| (second.orders_confirmed > 0).then_some(second.confirm_p50_ms),
                    right_axis: false,
                },
                Line {
                    label: "p99",
                    color: RED,
                    value: |second| (second.orders_confirmed > 0).then_some(second.confirm_p99_ms),
                    right_axis: false,
                },
            ],
        ),
    ];
    let mut html = String::from("<h2>Over time</h2>\n");
    for (title, left, right, lines) in charts {
        match chart(seconds, title, left, right, &lines) {
            Ok(svg) => {
                html.push_str(&svg);
                html.push('\n');
            }
            Err(error) => {
                let _ = writeln!(html, "<p>The chart {} could not be drawn: {}</p>", escape(title), escape(&error));
            }
        }
    }
    html
}

/// One chart as SVG: seconds on x, the left axis for most lines, the right one for those
/// that say so (a rate of another magnitude).
fn chart(seconds: &[SecondReport], title: &str, left: &str, right: &str, lines: &[Line<'_>]) -> Result<String, String> {
    let last = seconds.last().map_or(1.0, |second| second.second as f64 + 1.0);
    let ceiling = |right_axis: bool| {
        let highest = lines
            .iter()
            .filter(|line| line.right_axis == right_axis)
            .flat_map(|line| seconds.iter().filter_map(line.value))
            .fold(0.0f64, f64::max);
        if highest > 0.0 { highest * 1.1 } else { 1.0 }
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|error| error.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .right_y_label_area_size(if right.is_empty() { 0 } else { 60 })
            .build_cartesian_2d(0.0..last, 0.0..ceiling(false))
            .map_err(|error| error.to_string())?
            .set_secondary_coord(0.0..last, 0.0..ceiling(true));
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc(left)
            .light_line_style(WHITE)
            .draw()
            .map_err(|error| error.to_string())?;
        if !right.is_empty() {
            chart.configure_secondary_axes().y_desc(right).draw().map_err(|error| error.to_string())?;
        }
        for line in lines {
            let points = seconds
                .iter()
                .filter_map(|second| (line.value)(second).map(|value| (second.second as f64 + 0.5, value)));
            let color = line.color;
            let series = LineSeries::new(points, color.stroke_width(2));
            let drawn = if line.right_axis { chart.draw_secondary_series(series) } else { chart.draw_series(series) };
            drawn
                .map_err(|error| error.to_string())?
                .label(line.label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|error| error.to_string())?;
        root.present().map_err(|error| error.to_string())?;
    }
    Ok(svg)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(second: u64, requests: u64) -> SecondReport {
        SecondReport {
            second,
            requests,
            errors: 0,
            orders_confirmed: requests / 17,
            latency_p50_ms: 2.0,
            latency_p99_ms: 9.5,
            confirm_p50_ms: 40.0,
            confirm_p99_ms: 120.0,
        }
    }

    #[test]
    fn a_chart_is_svg_with_its_title_and_legend() {
        let seconds: Vec<SecondReport> = (0..30).map(|index| second(index, 100 + index * 3)).collect();
        let lines = [Line {
            label: "requests/s",
            color: BLUE,
            value: |second| Some(second.requests as f64),
            right_axis: false,
        }];
        let svg = chart(&seconds, "Throughput per second", "requests/s", "", &lines).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
        assert!(svg.contains("Throughput per second"));
        assert!(svg.contains("requests/s"));
        assert!(svg.contains("<polyline"), "a line is drawn");
    }

    #[test]
    fn an_empty_run_still_draws() {
        assert!(chart(&[], "Nothing", "ms", "orders/s", &[]).is_ok());
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("<a href=\"x\">&</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;");
    }
}
