//! The second program of Microsoft's "Creating Named Shared Memory", in Rust:
//! opens `Global\MyFileMappingObject` by name, shows the message, and answers
//! through the same memory.

use objmgr::{MapAccess, Section};
use std::sync::atomic::Ordering;

const NAME: &str = "Global\\MyFileMappingObject";
const ANSWER_AT: usize = 128;
const FLAG_AT: usize = 248;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let section = Section::open(NAME, MapAccess::ALL_ACCESS)?;
    let view = section.map(MapAccess::ALL_ACCESS)?;
    let mut message = [0u8; 128];
    view.read_at(0, &mut message)?;
    let end = message
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(message.len());
    println!(
        "reader (pid {}): read {:?} from {NAME}",
        std::process::id(),
        String::from_utf8_lossy(&message[..end])
    );
    view.write_at(ANSWER_AT, b"Hello back from the second process.\0")?;
    view.atomic_u32(FLAG_AT)?.store(1, Ordering::Release);
    Ok(())
}
