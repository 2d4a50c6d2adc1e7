//! The integration tests: real `exclaved` processes on loopback, real QUIC, real files.

// Test code: a failed setup should stop the test loudly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod attacks;
mod backlog;
mod chaos;
mod connections;
mod coordinator;
mod durability;
mod full;
mod grow;
mod lifecycle;
mod nodes;
mod objects;
mod ops;
mod recovery;
mod s3;
mod shapes;
mod sigv4;
mod space;
mod ssec;
mod support;
mod tagging;
mod tenants;
mod tls;
mod versioning;
mod versions;
