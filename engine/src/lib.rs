//! The cclog engine: a durable, hash-chained, append-only event log on sled, with
//! verification and a projection framework. It knows nothing about Claude Code, HTTP, MCP
//! or the command line: events are a stream name, a kind and opaque payload bytes.
//!
//! # Layout
//! - [`envelope`]: the event and its hashes.
//! - [`block`]: how events are packed into sled values on disk.
//! - `store`: the data directory, its lock and sled trees; `ownership`, `anchor` and
//!   `durability` are the pieces it is made of, and `seal` tells whether sled's files
//!   must be proven intact before sled may open them.
//! - `group_commit`: the single writer task and group commit; `space` keeps it off a full
//!   disk, and `recovery` cuts the log back to its last acknowledged event after a failed
//!   write.
//! - [`Log`] (`log`): opening, appending, reading, subscribing, rebuilding.
//! - [`verify`]: the verification walk and the damage it names; `carve` reads blocks
//!   straight out of sled's files when sled cannot, and `salvage` copies what it proves
//!   into a new directory.
//! - [`projection`]: the projection trait and its rebuild machinery.
//!
//! # Example
//!
//! ```
//! use cclog_engine::{Log, LogOptions, NewEvent};
//!
//! let dir = tempfile::tempdir()?;
//! let log = Log::open(dir.path(), LogOptions::default())?;
//! let appended = log.append_blocking(vec![
//!     NewEvent::new("session/1", "message", br#"{"text":"hi"}"#.to_vec()),
//!     NewEvent::new("session/1", "message", br#"{"text":"bye"}"#.to_vec()),
//! ])?;
//! assert_eq!(appended[1].seq, 1);
//!
//! let event = log.get(1)?.expect("durable");
//! assert_eq!(event.payload, br#"{"text":"bye"}"#);
//! assert_eq!(event.prev, appended[0].hash);
//! assert!(log.verify(0, &mut |_, _| {}).intact());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod anchor;
pub mod block;
mod carve;
pub mod compact;
mod durability;
pub mod envelope;
mod error;
pub mod footprint;
mod group_commit;
mod log;
mod ownership;
mod point_runs;
pub mod projection;
mod recovery;
mod salvage;
mod seal;
mod space;
mod store;
mod subscription;
pub mod verify;

pub use anchor::{read_anchor, read_fault, AnchorState, ANCHOR_FILE};
pub use envelope::{payload_hash, Event, Hash, Header, NewEvent, MAX_PAYLOAD_LEN, MAX_STREAM_LEN};
pub use error::{Error, Result};
pub use group_commit::{AppendChain, Appended, WriterMetrics};
pub use log::{directory_size, Health, Log, LogOptions, PendingAppend};
pub use ownership::LOCK_FILE;
pub use projection::{ApplyError, Projection, ProjectionState, ProjectionView, RebuildReport};
pub use recovery::{Recovery, RECOVERY_KIND, RECOVERY_STREAM};
pub use salvage::{salvage, SalvageReport};
pub use space::{describe_bytes, free_bytes, DEFAULT_DISK_RESERVE};
pub use store::{create_data_dir, Head, Store};
pub use subscription::Subscription;
pub use verify::{verify_dir, Damage, DamageKind, VerifyReport};
