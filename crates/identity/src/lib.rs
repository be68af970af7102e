//! The identity service: users, credentials, roles, addresses and refresh tokens.
