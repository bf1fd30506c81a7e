//! Typed async client of the HTTP API (feature `client`).
