//! Cross-crate and end-to-end tests of cclog, one module per area, as one test binary so
//! that it links once. Modules that need the `cclog` binary find it beside this test
//! binary in cargo's target directory.

mod access;
mod browser;
mod ccmanager;
mod claude_cli;
mod cli;
mod client;
mod containers;
mod coordinator;
mod crash;
mod damage;
mod durability;
mod engine;
mod fake_api;
mod full_disk;
mod import;
mod ingest_props;
mod mcp;
mod model;
mod mutation;
mod openapi;
mod orphans;
mod plan;
mod presentation;
mod projection;
mod serve;
mod support;
mod team;
#[path = "../common/transcript.rs"]
mod transcript;
mod usage;
mod watch;
