//! `objmgr`: look into and manage the objmgr namespace.
#![forbid(unsafe_code)]

use objmgr::admin::{self, BrokerStatus, ObjectEntry, ObjectType};
use objmgr::error::{ERROR_FILE_NOT_FOUND, ERROR_INVALID_PARAMETER, ERROR_SERVICE_NOT_ACTIVE};
use objmgr::{Error, MapAccess, Section};
use std::fmt::Write as _;
use std::io::Write;
use std::process::ExitCode;

const USAGE: &str = "usage: objmgr <command> [options]

commands:
  ls [--files] [--json]                list every named object (path, type, size, handles);
                                       --files: the files open through objmgr, with share modes
  stat NAME [--json]                   show one object (NAME as Global\\x, Local\\x, x, or a full path)
  dump NAME [--offset N] [--len N]     hexdump a live section, like xxd
  ps [--json]                          list connected processes (pid, tag, handle count, name)
  handles PID [--json]                 list a process's handles (value, type, access, flags, name)
  broker status [--json]               show the broker's state and request counters
  broker stop                          stop the broker (all handles die with it)

Looking never starts a broker. Exit status: 0 success, 1 failure (the Win32
error is printed on stderr), 2 usage error, 3 no broker running (broker status).
Environment: OBJMGR_SOCKET selects the broker socket.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    admin::set_autostart(false);
    let result = match args.first().map(String::as_str) {
        Some("ls") => ls(&args[1..]),
        Some("stat") => stat(&args[1..]),
        Some("dump") => dump(&args[1..]),
        Some("ps") => ps(&args[1..]),
        Some("handles") => handles(&args[1..]),
        Some("broker") => broker(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(Failure::Usage("expected a command".into())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(why)) => {
            eprintln!("objmgr: {why}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::NoBroker(why)) => {
            eprintln!("objmgr: {why}");
            ExitCode::from(3)
        }
        Err(Failure::Win32(e)) => {
            eprintln!("objmgr: {e}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    Usage(String),
    NoBroker(String),
    Win32(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Win32(e)
    }
}

/// Parsed `--flag` options after the positional arguments.
struct Options {
    positional: Vec<String>,
    json: bool,
    offset: u64,
    len: Option<u64>,
}

fn parse_number(flag: &str, value: Option<&String>) -> Result<u64, Failure> {
    let value = value.ok_or_else(|| Failure::Usage(format!("{flag} needs a value")))?;
    let parsed = match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => value.parse(),
    };
    parsed.map_err(|_| Failure::Usage(format!("{flag}: {value:?} is not a number")))
}

fn parse(args: &[String], allowed: &[&str]) -> Result<Options, Failure> {
    let mut options = Options {
        positional: Vec::new(),
        json: false,
        offset: 0,
        len: None,
    };
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        if arg.starts_with("--") && !allowed.contains(&arg) {
            return Err(Failure::Usage(format!("unknown option {arg}")));
        }
        match arg {
            "--json" => options.json = true,
            "--offset" => {
                i += 1;
                options.offset = parse_number("--offset", args.get(i))?;
            }
            "--len" => {
                i += 1;
                options.len = Some(parse_number("--len", args.get(i))?);
            }
            _ => options.positional.push(args[i].clone()),
        }
        i += 1;
    }
    Ok(options)
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn entry_json(e: &ObjectEntry) -> String {
    let mut out = format!(
        "{{\"path\":{},\"type\":{},\"size\":{},\"handles\":{}",
        json_string(&e.path),
        json_string(e.object_type.name()),
        e.size,
        e.handle_count
    );
    for (k, v) in &e.properties {
        let _ = write!(out, ",{}:{}", json_string(k), json_string(v));
    }
    out.push('}');
    out
}

/// Treats "no broker" as an empty namespace: nothing exists without one.
fn or_empty<T>(result: objmgr::Result<T>, empty: impl FnOnce() -> T) -> Result<T, Failure> {
    match result {
        Err(e) if e.code() == ERROR_SERVICE_NOT_ACTIVE => Ok(empty()),
        other => Ok(other?),
    }
}

fn not_found_without_broker(e: Error, name: &str) -> Failure {
    if e.code() == ERROR_SERVICE_NOT_ACTIVE {
        Failure::Win32(Error::new(
            ERROR_FILE_NOT_FOUND,
            format!("no object named {name:?} (no broker is running)"),
        ))
    } else {
        Failure::Win32(e)
    }
}

fn ls(args: &[String]) -> Result<(), Failure> {
    let files = args.iter().any(|a| a == "--files");
    let args: Vec<String> = args.iter().filter(|a| *a != "--files").cloned().collect();
    let options = parse(&args, &["--json"])?;
    if !options.positional.is_empty() {
        return Err(Failure::Usage("ls takes no arguments".into()));
    }
    let entries = if files {
        or_empty(admin::list_files(), Vec::new)?
    } else {
        or_empty(admin::list_objects(), Vec::new)?
    };
    let mut out = String::new();
    if options.json {
        out.push('[');
        for (i, e) in entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&entry_json(e));
        }
        out.push_str("]\n");
    } else {
        let states: Vec<String> = entries.iter().map(state_summary).collect();
        let width = states.iter().map(String::len).max().unwrap_or(0).max(5);
        let owners: Vec<&str> = entries
            .iter()
            .map(|e| {
                e.properties
                    .iter()
                    .find(|(k, _)| k == "object_owner")
                    .map_or("-", |(_, v)| v.as_str())
            })
            .collect();
        let owner_width = owners.iter().map(|o| o.len()).max().unwrap_or(0).max(5);
        let _ = writeln!(
            out,
            "{:<10} {:>7} {:>14}  {:<owner_width$}  {:<width$}  PATH",
            "TYPE", "HANDLES", "SIZE", "OWNER", "STATE"
        );
        for ((e, state), owner) in entries.iter().zip(&states).zip(&owners) {
            let size = if e.object_type == ObjectType::Section {
                e.size.to_string()
            } else {
                "-".to_owned()
            };
            let _ = writeln!(
                out,
                "{:<10} {:>7} {size:>14}  {owner:<owner_width$}  {state:<width$}  {}",
                e.object_type.name(),
                e.handle_count,
                e.path
            );
        }
    }
    print_out(&out);
    Ok(())
}

/// The STATE column of `ls`: a section's protection, a sync object's state
/// (`signaled`, counts, owner, waiters) as `key=value` words.
fn state_summary(entry: &ObjectEntry) -> String {
    let shown: &[&str] = if entry.object_type == ObjectType::Section {
        &["protection"]
    } else {
        &[
            "signaled",
            "count",
            "maximum",
            "owner",
            "abandoned",
            "due",
            "waiters",
            "processes",
            "terminated",
            "access",
            "share",
            "opened_by",
            "locks",
        ]
    };
    entry
        .properties
        .iter()
        .filter(|(k, _)| shown.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={}", v.replace(' ', "")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn ps(args: &[String]) -> Result<(), Failure> {
    let options = parse(args, &["--json"])?;
    if !options.positional.is_empty() {
        return Err(Failure::Usage("ps takes no arguments".into()));
    }
    let processes = or_empty(admin::list_processes(), Vec::new)?;
    let mut out = String::new();
    if options.json {
        let rows: Vec<String> = processes
            .iter()
            .map(|p| {
                format!(
                    "{{\"pid\":{},\"tag\":{},\"handles\":{},\"name\":{}}}",
                    p.pid,
                    p.tag,
                    p.handles,
                    json_string(&p.name)
                )
            })
            .collect();
        let _ = writeln!(out, "[{}]", rows.join(","));
    } else {
        let _ = writeln!(out, "{:>8} {:>6} {:>8}  NAME", "PID", "TAG", "HANDLES");
        for p in &processes {
            let _ = writeln!(
                out,
                "{:>8} {:>6} {:>8}  {}",
                p.pid, p.tag, p.handles, p.name
            );
        }
    }
    print_out(&out);
    Ok(())
}

/// `HANDLE_FLAG_*` bits as words.
fn flag_words(flags: u32) -> String {
    let mut words = Vec::new();
    if flags & objmgr::handle::HANDLE_FLAG_INHERIT != 0 {
        words.push("inherit");
    }
    if flags & objmgr::handle::HANDLE_FLAG_PROTECT_FROM_CLOSE != 0 {
        words.push("protect");
    }
    if words.is_empty() {
        "-".to_owned()
    } else {
        words.join(",")
    }
}

fn handles(args: &[String]) -> Result<(), Failure> {
    let options = parse(args, &["--json"])?;
    let [pid] = options.positional.as_slice() else {
        return Err(Failure::Usage("handles takes one PID".into()));
    };
    let pid: u32 = pid
        .parse()
        .map_err(|_| Failure::Usage(format!("not a process id: {pid}")))?;
    let handles = admin::list_handles(pid).map_err(|e| {
        if e.code() == ERROR_SERVICE_NOT_ACTIVE {
            Failure::Win32(Error::new(
                ERROR_INVALID_PARAMETER,
                format!("process {pid} holds no objmgr handles (no broker is running)"),
            ))
        } else {
            Failure::Win32(e)
        }
    })?;
    let mut out = String::new();
    if options.json {
        let rows: Vec<String> = handles
            .iter()
            .map(|h| {
                format!(
                    "{{\"value\":{},\"type\":{},\"access\":{},\"inherit\":{},\"protect\":{},\"name\":{}}}",
                    h.value,
                    json_string(h.object_type.name()),
                    h.access,
                    h.flags & objmgr::handle::HANDLE_FLAG_INHERIT != 0,
                    h.flags & objmgr::handle::HANDLE_FLAG_PROTECT_FROM_CLOSE != 0,
                    json_string(&h.path)
                )
            })
            .collect();
        let _ = writeln!(out, "[{}]", rows.join(","));
    } else {
        let _ = writeln!(
            out,
            "{:>8}  {:<10} {:>10}  {:<15}  NAME",
            "HANDLE", "TYPE", "ACCESS", "FLAGS"
        );
        for h in &handles {
            let _ = writeln!(
                out,
                "{:>#8x}  {:<10} {:>#10x}  {:<15}  {}",
                h.value,
                h.object_type.name(),
                h.access,
                flag_words(h.flags),
                h.path
            );
        }
    }
    print_out(&out);
    Ok(())
}

fn print_out(text: &str) {
    // A closed stdout (`objmgr ls | head`) is not an error worth a panic.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn stat(args: &[String]) -> Result<(), Failure> {
    let options = parse(args, &["--json"])?;
    let [name] = options.positional.as_slice() else {
        return Err(Failure::Usage("stat takes one NAME".into()));
    };
    let entry = admin::stat_object(name).map_err(|e| not_found_without_broker(e, name))?;
    if options.json {
        print_out(&format!("{}\n", entry_json(&entry)));
        return Ok(());
    }
    let mut out = String::new();
    let _ = writeln!(out, "path:       {}", entry.path);
    let _ = writeln!(out, "type:       {}", entry.object_type.name());
    let _ = writeln!(out, "handles:    {}", entry.handle_count);
    if entry.object_type == ObjectType::Section {
        let _ = writeln!(out, "size:       {}", entry.size);
    }
    for (k, v) in &entry.properties {
        let _ = writeln!(out, "{:<11} {v}", format!("{k}:"));
    }
    print_out(&out);
    Ok(())
}

fn dump(args: &[String]) -> Result<(), Failure> {
    let options = parse(args, &["--offset", "--len"])?;
    let [name] = options.positional.as_slice() else {
        return Err(Failure::Usage("dump takes one NAME".into()));
    };
    let section =
        Section::open(name, MapAccess::READ).map_err(|e| not_found_without_broker(e, name))?;
    let size = section.size();
    if options.offset > size
        || options
            .len
            .is_some_and(|len| options.offset.saturating_add(len) > size)
    {
        return Err(Failure::Win32(Error::new(
            ERROR_INVALID_PARAMETER,
            format!(
                "range {}+{} is outside the {size}-byte section",
                options.offset,
                options.len.unwrap_or(0)
            ),
        )));
    }
    let len = options.len.unwrap_or(size - options.offset);
    if len == 0 {
        return Ok(());
    }
    // Map the whole section (views start at 64 KiB granules, or at huge-page
    // boundaries for large-page sections; mapping costs address space only).
    let view = section.map(MapAccess::READ)?;
    let mut stdout = std::io::stdout().lock();
    let mut line = [0u8; 16];
    let mut pos = options.offset;
    let end = options.offset + len;
    while pos < end {
        let n = (end - pos).min(16) as usize;
        view.read_at(pos as usize, &mut line[..n])?;
        let mut text = format!("{pos:08x}:");
        for chunk in line[..n].chunks(2) {
            text.push(' ');
            for b in chunk {
                let _ = write!(text, "{b:02x}");
            }
        }
        // As xxd: the hex column padded to its full width, then two spaces.
        let pad = 16 * 2 + 8 - (n * 2 + n.div_ceil(2));
        text.push_str(&" ".repeat(pad + 2));
        text.extend(line[..n].iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        }));
        text.push('\n');
        if stdout.write_all(text.as_bytes()).is_err() {
            break;
        }
        pos += n as u64;
    }
    Ok(())
}

fn status_json(s: &BrokerStatus) -> String {
    let mut requests = String::new();
    for (i, (name, n)) in s.requests.iter().enumerate() {
        if i > 0 {
            requests.push(',');
        }
        let _ = write!(requests, "{}:{n}", json_string(name));
    }
    format!(
        "{{\"pid\":{},\"protocol_version\":{},\"uptime_ms\":{},\"socket\":{},\"clients\":{},\"objects\":{},\"named_objects\":{},\"handles\":{},\"idle_timeout_ms\":{},\"processes_tracked\":{},\"pending_tables\":{},\"requests\":{{{requests}}}}}\n",
        s.pid,
        s.protocol_version,
        s.uptime_ms,
        json_string(&s.socket),
        s.clients,
        s.objects,
        s.named_objects,
        s.handles,
        s.idle_timeout_ms,
        s.processes_tracked,
        s.pending_tables
    )
}

fn broker(args: &[String]) -> Result<(), Failure> {
    let options = parse(args.get(1..).unwrap_or(&[]), &["--json"])?;
    match args.first().map(String::as_str) {
        Some("status") => {
            let status = admin::broker_status().map_err(|e| {
                if e.code() == ERROR_SERVICE_NOT_ACTIVE {
                    Failure::NoBroker(e.to_string())
                } else {
                    Failure::Win32(e)
                }
            })?;
            if options.json {
                print_out(&status_json(&status));
                return Ok(());
            }
            let mut out = String::new();
            let _ = writeln!(out, "pid:            {}", status.pid);
            let _ = writeln!(out, "socket:         {}", status.socket);
            let _ = writeln!(out, "protocol:       {}", status.protocol_version);
            let _ = writeln!(
                out,
                "uptime:         {:.1} s",
                status.uptime_ms as f64 / 1000.0
            );
            let idle = if status.idle_timeout_ms == 0 {
                "never".to_owned()
            } else {
                format!("{} ms", status.idle_timeout_ms)
            };
            let _ = writeln!(out, "idle timeout:   {idle}");
            // This command's own connection is one of the clients.
            let _ = writeln!(out, "clients:        {}", status.clients);
            let _ = writeln!(
                out,
                "objects:        {} ({} named)",
                status.objects, status.named_objects
            );
            let _ = writeln!(out, "handles:        {}", status.handles);
            let _ = writeln!(
                out,
                "processes:      {} tracked, {} handle tables waiting",
                status.processes_tracked, status.pending_tables
            );
            let _ = writeln!(out, "requests:");
            for (name, n) in &status.requests {
                let _ = writeln!(out, "  {name:<16} {n}");
            }
            print_out(&out);
            Ok(())
        }
        Some("stop") => match admin::shutdown_broker() {
            Ok(()) => Ok(()),
            Err(e) if e.code() == ERROR_SERVICE_NOT_ACTIVE => {
                eprintln!("objmgr: no broker is running");
                Ok(())
            }
            Err(e) => Err(e.into()),
        },
        _ => Err(Failure::Usage("broker takes 'status' or 'stop'".into())),
    }
}
