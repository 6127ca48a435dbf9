//! procmon, the command: a process supervisor with Twisted's `twistd procmon`
//! semantics, built on `procmon-core` (the decisions) and `procmon-mio` (the
//! processes, pipes, timers and signals).
//!
//! The pieces are a library so they can be tested and fuzzed on their own:
//! [`config`] reads the TOML file, [`cli`] the command line, [`output`]
//! prints, and [`run`] drives the supervisor until a stop signal, serving
//! the [`control`] socket and, if asked, metrics over [`http`].
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod control;
pub mod ctl;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod http;
pub mod logfile;
pub mod logroute;
pub mod output;
pub mod protocol;
pub mod ring;
pub mod run;
pub mod sink;
pub mod stamp;
