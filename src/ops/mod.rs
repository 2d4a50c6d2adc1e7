//! The operator commands, named after the CLI (`tools/` is a thin argument layer over them):
//! `init` (a new cluster), `dev` (the embedded default), `keys` (share files; `keys rotate`),
//! `layout` (`layout apply`), `recover` (a gateway, or an export, from the foreign sites),
//! `drill` (a recovery rehearsed against the live cluster).
//! They sit above every layer and may use any of them; no layer imports them.

#[cfg(test)]
mod crash;
pub mod dev;
pub mod drill;
pub mod init;
pub mod keys;
pub mod layout;
pub mod recover;
