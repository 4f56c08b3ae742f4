//! The child side: a tiny interpreter of objmgr operations, one per line.
//! Results are printed as `@@...` lines; failures as `@@err <code>`.
//!
//! | command                                   | does                                         |
//! |-------------------------------------------|----------------------------------------------|
//! | `create NAME SIZE [PROT]`                 | memory-backed section (`-` = unnamed)        |
//! | `create_large NAME SIZE`                  | with `SEC_LARGE_PAGES`                       |
//! | `create_file PATH ro|rw NAME SIZE [PROT]` | file-backed section                          |
//! | `open NAME read|write|all|copy`           | `OpenFileMapping`                            |
//! | `map ACCESS [OFFSET LEN [prefault]]`      | view of the last section                     |
//! | `map_at ACCESS ADDR`                      | view at ADDR (hex; `last`: the last view's, `freed`: the last unmapped one's, `inside`: an aligned one in the last view) |
//! | `write OFF TEXT` / `read OFF LEN`         | through the last view                        |
//! | `add OFF` / `load OFF`                    | atomic u32 add 1 / load                      |
//! | `flush` / `unmap` / `close`               | last view / last view / last section         |
//! | `fdmode`                                  | access mode of the last section's fd         |
//! | `size` / `existed`                        | facts about the last section                 |
//! | `truncate LEN`                            | `ftruncate` the last section's fd directly   |
//! | `hold`                                    | print `@@holding`, wait for a stdin line     |

use objmgr::{Error, MapAccess, MapOptions, PageProtection, Section, View};
use std::io::BufRead;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;

fn access(word: &str) -> MapAccess {
    match word {
        "read" => MapAccess::READ,
        "write" => MapAccess::WRITE,
        "all" => MapAccess::ALL_ACCESS,
        "copy" => MapAccess::COPY,
        "none" => MapAccess(0),
        "rx" => MapAccess::READ | MapAccess::EXECUTE,
        other => panic!("unknown access {other}"),
    }
}

fn protection(word: Option<&&str>) -> PageProtection {
    match word.copied().unwrap_or("rw") {
        "rw" => PageProtection::ReadWrite,
        "ro" => PageProtection::ReadOnly,
        "wc" => PageProtection::WriteCopy,
        "rx" => PageProtection::ExecuteRead,
        other => panic!("unknown protection {other}"),
    }
}

fn name(word: &str) -> Option<String> {
    (word != "-").then(|| word.replace("\\\\", "\\"))
}

pub fn run_script(script: &str) {
    let mut sections: Vec<Section> = Vec::new();
    let mut views: Vec<View> = Vec::new();
    let mut freed = 0usize;
    for line in script.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        let result: Result<String, Error> = (|| {
            Ok(match words[0] {
                "create" | "create_large" => {
                    let mut builder = Section::builder()
                        .size(words[2].parse().unwrap())
                        .protection(protection(words.get(3)));
                    if let Some(n) = name(words[1]) {
                        builder = builder.name(&n);
                    }
                    let section = builder.large_pages(words[0] == "create_large").create()?;
                    let existed = section.existed();
                    sections.push(section);
                    format!("create existed={}", existed as u8)
                }
                "create_file" => {
                    let file = std::fs::OpenOptions::new()
                        .read(true)
                        .write(words[2] == "rw")
                        .open(words[1])
                        .unwrap();
                    let mut builder = Section::builder()
                        .size(words[4].parse().unwrap())
                        .protection(protection(words.get(5)));
                    if let Some(n) = name(words[3]) {
                        builder = builder.name(&n);
                    }
                    sections.push(builder.create_from_file(&file)?);
                    "create_file".into()
                }
                "open" => {
                    sections.push(Section::open(
                        &name(words[1]).unwrap_or_default(),
                        access(words[2]),
                    )?);
                    "open".into()
                }
                "map" => {
                    let mut options = MapOptions::new(access(words[1]));
                    if words.len() >= 4 {
                        options.offset = words[2].parse().unwrap();
                        options.len = words[3].parse().unwrap();
                    }
                    options.prefault = words.get(4) == Some(&"prefault");
                    let view = sections.last().unwrap().map_with(&options)?;
                    let line = format!("map len={} addr={:x}", view.len(), view.as_ptr() as usize);
                    views.push(view);
                    line
                }
                "map_at" => {
                    let addr = match words[2] {
                        "last" => views.last().unwrap().as_ptr() as usize,
                        "freed" => freed,
                        // A 64 KiB-aligned address inside the last view.
                        "inside" => {
                            (views.last().unwrap().as_ptr() as usize).next_multiple_of(65536)
                        }
                        hex => usize::from_str_radix(hex, 16).unwrap(),
                    };
                    let options = MapOptions {
                        address: std::ptr::NonNull::new(addr as *mut u8),
                        ..MapOptions::new(access(words[1]))
                    };
                    let view = sections.last().unwrap().map_with(&options)?;
                    let line = format!("map_at addr={:x}", view.as_ptr() as usize);
                    views.push(view);
                    line
                }
                "write" => {
                    views
                        .last()
                        .unwrap()
                        .write_at(words[1].parse().unwrap(), words[2].as_bytes())?;
                    "write".into()
                }
                "read" => {
                    let mut buf = vec![0u8; words[2].parse().unwrap()];
                    views
                        .last()
                        .unwrap()
                        .read_at(words[1].parse().unwrap(), &mut buf)?;
                    format!(
                        "read {}",
                        String::from_utf8_lossy(&buf).trim_end_matches('\0')
                    )
                }
                "add" => {
                    views
                        .last()
                        .unwrap()
                        .atomic_u32(words[1].parse().unwrap())?
                        .fetch_add(1, Ordering::SeqCst);
                    "add".into()
                }
                "load" => format!(
                    "load {}",
                    views
                        .last()
                        .unwrap()
                        .atomic_u32(words[1].parse().unwrap())?
                        .load(Ordering::SeqCst)
                ),
                "flush" => {
                    views.last().unwrap().flush()?;
                    "flush".into()
                }
                "unmap" => {
                    freed = views.pop().unwrap().as_ptr() as usize;
                    "unmap".into()
                }
                "close" => {
                    sections.pop().unwrap().close()?;
                    "close".into()
                }
                "fdmode" => {
                    let flags = rustix::fs::fcntl_getfl(sections.last().unwrap().as_fd()).unwrap();
                    let mode = flags & rustix::fs::OFlags::RWMODE;
                    format!(
                        "fdmode {}",
                        if mode == rustix::fs::OFlags::RDONLY {
                            "ro"
                        } else {
                            "rw"
                        }
                    )
                }
                "size" => format!("size {}", sections.last().unwrap().size()),
                "truncate" => {
                    let fd = sections.last().unwrap().as_fd();
                    match rustix::fs::ftruncate(fd, words[1].parse().unwrap()) {
                        Ok(()) => "truncated".into(),
                        Err(e) => format!("truncate refused errno={}", e.raw_os_error()),
                    }
                }
                "existed" => format!("existed {}", sections.last().unwrap().existed() as u8),
                "hold" => {
                    println!("@@holding");
                    let mut line = String::new();
                    let _ = std::io::stdin().lock().read_line(&mut line);
                    "released".into()
                }
                other => panic!("unknown script command {other}"),
            })
        })();
        match result {
            Ok(line) => println!("@@{line}"),
            Err(e) => println!(
                "@@err {} {}",
                e.code().code(),
                e.context().replace('\n', " ")
            ),
        }
    }
}
