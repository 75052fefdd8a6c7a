//! A model test in sled's style: random operations on the log — append, read, read a
//! stream, verify, restart, rebuild — checked after each step against a plain `Vec`, with
//! payloads of random sizes and compressibility.

use cclog_engine::envelope::GENESIS;
use cclog_engine::{Log, NewEvent};
use proptest::prelude::*;

use crate::support::open;

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<(u8, Vec<u8>)>),
    Read(u16),
    /// A stream read from a seq: consecutive events of one stream share an index entry.
    ReadStream(u8, u16),
    Verify,
    Restart,
    Rebuild,
}

/// Payloads of every kind a block holds: tiny, random (incompressible), and long and
/// repetitive (compressing to a fraction of their size), so blocks of mixed sizes and
/// compressibility, some past a block's payload limit, are written and read back.
fn arb_payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => proptest::collection::vec(any::<u8>(), 64..6000),
        1 => ("[a-z\"{}:, ]{1,16}", 1usize..20_000).prop_map(|(text, times)| text.repeat(times).into_bytes()),
    ]
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec((0..3u8, arb_payload()), 1..10).prop_map(Op::Append),
        2 => any::<u16>().prop_map(Op::Read),
        3 => (0..3u8, any::<u16>()).prop_map(|(stream, from)| Op::ReadStream(stream, from)),
        1 => Just(Op::Verify),
        1 => Just(Op::Restart),
        1 => Just(Op::Rebuild),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn log_behaves_like_a_vec(ops in proptest::collection::vec(arb_op(), 1..25)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log: Option<Log> = Some(open(dir.path()));
        let mut model: Vec<(String, Vec<u8>)> = Vec::new();
        for op in ops {
            let current = log.as_ref().unwrap();
            match op {
                Op::Append(events) => {
                    let batch: Vec<NewEvent> = events.iter().map(|(stream, payload)| NewEvent::new(format!("s{stream}"), "k", payload.clone())).collect();
                    let appended = current.append_blocking(batch).unwrap();
                    for (offset, (stream, payload)) in events.into_iter().enumerate() {
                        prop_assert_eq!(appended[offset].seq, model.len() as u64);
                        model.push((format!("s{stream}"), payload));
                    }
                }
                Op::Read(seq) => {
                    let seq = u64::from(seq) % (model.len() as u64 + 2);
                    let event = current.get(seq).unwrap();
                    match model.get(seq as usize) {
                        Some((stream, payload)) => {
                            let event = event.unwrap();
                            prop_assert_eq!(event.stream(), stream.as_str());
                            prop_assert_eq!(&event.payload, payload);
                        }
                        None => prop_assert!(event.is_none()),
                    }
                }
                Op::ReadStream(stream, from) => {
                    let name = format!("s{stream}");
                    let from = u64::from(from) % (model.len() as u64 + 2);
                    let got: Vec<(u64, Vec<u8>)> = current.stream(&name, from).map(|event| event.map(|event| (event.seq(), event.payload))).collect::<Result<_, _>>().unwrap();
                    let want: Vec<(u64, Vec<u8>)> = model.iter().enumerate().filter(|(seq, (s, _))| *s == name && *seq as u64 >= from).map(|(seq, (_, payload))| (seq as u64, payload.clone())).collect();
                    prop_assert_eq!(got, want);
                }
                Op::Verify => {
                    let report = current.verify(0, &mut |_, _| {});
                    prop_assert!(report.intact(), "{:?}", report.damage);
                    prop_assert_eq!(report.checked, model.len() as u64);
                }
                Op::Restart => {
                    drop(log.take());
                    // The closed directory verifies too, its files carved first.
                    let report = cclog_engine::verify_dir(dir.path(), 0, &mut |_, _| {}).unwrap();
                    prop_assert!(report.intact() && report.checked == model.len() as u64, "{:?}", report.damage);
                    log = Some(open(dir.path()));
                }
                Op::Rebuild => {
                    let reports = current.rebuild_blocking().unwrap();
                    prop_assert!(reports.iter().all(|report| report.equal_to_previous));
                }
            }
            let current = log.as_ref().unwrap();
            prop_assert_eq!(current.len(), model.len() as u64);
        }
        // The chain links every event to the one before it.
        let events: Vec<_> = log.as_ref().unwrap().range(0).collect::<Result<_, _>>().unwrap();
        let mut prev = GENESIS;
        for event in events {
            prop_assert_eq!(event.prev, prev);
            prev = event.hash;
        }
    }
}
