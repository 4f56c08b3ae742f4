//! The first program of Microsoft's "Creating Named Shared Memory", in Rust:
//! creates `Global\MyFileMappingObject`, writes a message, and waits for a
//! second process to answer through the same memory.
//!
//! Run `shm_reader` while this waits (or use `./demo.sh`, which runs both).

use objmgr::{MapAccess, Section};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const NAME: &str = "Global\\MyFileMappingObject";
const BUF_SIZE: u64 = 256;
/// Offset of the reader's answer, and of the flag it sets when done.
const ANSWER_AT: usize = 128;
const FLAG_AT: usize = 248;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let section = Section::create(NAME, BUF_SIZE)?;
    if section.existed() {
        return Err(format!("{NAME} exists already; is another writer running?").into());
    }
    let view = section.map(MapAccess::ALL_ACCESS)?;
    view.write_at(0, b"Message from first process.\0")?;
    println!(
        "writer (pid {}): wrote a message into {NAME}; waiting for a reader",
        std::process::id()
    );
    let flag = view.atomic_u32(FLAG_AT)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while flag.load(Ordering::Acquire) == 0 {
        if Instant::now() > deadline {
            return Err("no reader answered within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut answer = [0u8; 64];
    view.read_at(ANSWER_AT, &mut answer)?;
    let end = answer.iter().position(|&b| b == 0).unwrap_or(answer.len());
    println!(
        "writer: the reader answered: {:?}",
        String::from_utf8_lossy(&answer[..end])
    );
    Ok(())
}
