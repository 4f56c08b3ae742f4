//! `objmgr`: look into and manage the objmgr namespace.
//!
//! The command line is described once, with clap: `--help` of every
//! command, `--version`, the shell completions (`objmgr completions SHELL`)
//! and the man page (`objmgr manpage`) all come from the definitions below.
//! `--json` output is typed (numbers, booleans, null) and versioned
//! ([`SCHEMA_VERSION`]), with the same objects as the human output.
#![forbid(unsafe_code)]

use clap::{CommandFactory, Parser, Subcommand};
use objmgr::admin::{self, BrokerStatus, ObjectEntry, ObjectType};
use objmgr::error::{ERROR_FILE_NOT_FOUND, ERROR_INVALID_PARAMETER, ERROR_SERVICE_NOT_ACTIVE};
use objmgr::{Error, MapAccess, Section};
use serde_json::{Map, Value, json};
use std::fmt::Write as _;
use std::io::Write;
use std::process::ExitCode;

/// The version of the `--json` output's layout: fields are only added
/// within a version; a change that removes or retypes one bumps it.
const SCHEMA_VERSION: u32 = 1;

const AFTER_HELP: &str =
    "Looking never starts a broker. Exit status: 0 success, 1 failure (the Win32
error is printed on stderr), 2 usage error, 3 no broker running (broker status).
Environment: OBJMGR_SOCKET selects the broker socket.";

/// Look into and manage the objmgr namespace (named sections, mutexes,
/// events, semaphores, timers, jobs) of the broker this user talks to.
#[derive(Parser, Debug)]
#[command(name = "objmgr", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List every named object (path, type, size, handles, state)
    Ls {
        /// The files open through objmgr instead, with share modes and locks
        #[arg(long)]
        files: bool,
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Show one object (NAME as Global\x, Local\x, x, or a full path)
    Stat {
        name: String,
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Hexdump a live section, like xxd
    Dump {
        name: String,
        /// Where to start (decimal or 0x hex)
        #[arg(long, value_parser = parse_number, default_value = "0")]
        offset: u64,
        /// How many bytes (default: to the end)
        #[arg(long, value_parser = parse_number)]
        len: Option<u64>,
    },
    /// List connected processes (pid, tag, handle count, name)
    Ps {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// List a process's handles (value, type, access, flags, name)
    Handles {
        pid: u32,
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Show or stop the broker
    Broker {
        #[command(subcommand)]
        action: BrokerAction,
    },
    /// Print a completion script for SHELL (bash, zsh, fish, elvish, powershell)
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff, for man(1))
    Manpage,
}

#[derive(Subcommand, Debug)]
enum BrokerAction {
    /// Show the broker's state and request counters
    Status {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Stop the broker (all handles die with it)
    Stop,
}

fn main() -> ExitCode {
    // Usage errors exit 2, --help and --version 0 (clap's conventions).
    let cli = Cli::parse();
    admin::set_autostart(false);
    let result = match cli.command {
        Command::Ls { files, json } => ls(files, json),
        Command::Stat { name, json } => stat(&name, json),
        Command::Dump { name, offset, len } => dump(&name, offset, len),
        Command::Ps { json } => ps(json),
        Command::Handles { pid, json } => handles(pid, json),
        Command::Broker { action } => broker(action),
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "objmgr", &mut out);
            print_out(&String::from_utf8_lossy(&out));
            Ok(())
        }
        Command::Manpage => manpage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
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
    NoBroker(String),
    Win32(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Win32(e)
    }
}

fn parse_number(value: &str) -> Result<u64, String> {
    let parsed = match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => value.parse(),
    };
    parsed.map_err(|_| format!("{value:?} is not a number"))
}

/// The man page, with a section for each command.
fn manpage() -> Result<(), Failure> {
    let command = Cli::command();
    let mut out = Vec::new();
    let io = |e: std::io::Error| Failure::Win32(Error::new(ERROR_INVALID_PARAMETER, e.to_string()));
    clap_mangen::Man::new(command.clone())
        .render(&mut out)
        .map_err(io)?;
    // Each command's own options follow, under its name.
    for sub in command.get_subcommands().filter(|c| !c.is_hide_set()) {
        let title = format!("OBJMGR {}", sub.get_name().to_uppercase());
        let _ = writeln!(out_string(&mut out), ".SH \"{title}\"");
        if let Some(about) = sub.get_about() {
            let _ = writeln!(out_string(&mut out), "{about}");
        }
        clap_mangen::Man::new(sub.clone())
            .render_options_section(&mut out)
            .map_err(io)?;
    }
    print_out(&String::from_utf8_lossy(&out));
    Ok(())
}

/// Writes formatted text into a byte buffer.
fn out_string(out: &mut Vec<u8>) -> ByteWriter<'_> {
    ByteWriter(out)
}

struct ByteWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for ByteWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// A property's value as JSON: numbers as numbers, yes/no as booleans.
fn typed(value: &str) -> Value {
    match value {
        "yes" => Value::Bool(true),
        "no" => Value::Bool(false),
        _ => value
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(value)),
    }
}

/// One object as JSON: `path`, `type`, `handles`, `size` (sections only,
/// else null) and its properties, typed.
fn entry_json(e: &ObjectEntry) -> Value {
    let mut object = Map::new();
    object.insert("path".into(), json!(e.path));
    object.insert("type".into(), json!(e.object_type.name()));
    object.insert("handles".into(), json!(e.handle_count));
    let size = (e.object_type == ObjectType::Section).then_some(e.size);
    object.insert("size".into(), json!(size));
    for (k, v) in &e.properties {
        object.entry(k.clone()).or_insert_with(|| typed(v));
    }
    Value::Object(object)
}

/// A `--json` document: the schema version and `fields`.
fn document(fields: Value) -> String {
    let mut doc = Map::new();
    doc.insert("schema_version".into(), json!(SCHEMA_VERSION));
    if let Value::Object(fields) = fields {
        doc.extend(fields);
    }
    format!("{}\n", Value::Object(doc))
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

fn ls(files: bool, json: bool) -> Result<(), Failure> {
    let entries = if files {
        or_empty(admin::list_files(), Vec::new)?
    } else {
        or_empty(admin::list_objects(), Vec::new)?
    };
    let mut out = String::new();
    if json {
        let objects: Vec<Value> = entries.iter().map(entry_json).collect();
        out = document(json!({ if files { "files" } else { "objects" }: objects }));
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

fn ps(json: bool) -> Result<(), Failure> {
    let processes = or_empty(admin::list_processes(), Vec::new)?;
    let mut out = String::new();
    if json {
        let rows: Vec<Value> = processes
            .iter()
            .map(|p| json!({ "pid": p.pid, "tag": p.tag, "handles": p.handles, "name": p.name }))
            .collect();
        out = document(json!({ "processes": rows }));
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

fn handles(pid: u32, json: bool) -> Result<(), Failure> {
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
    if json {
        let rows: Vec<Value> = handles
            .iter()
            .map(|h| {
                json!({
                    "value": h.value,
                    "type": h.object_type.name(),
                    "access": h.access,
                    "inherit": h.flags & objmgr::handle::HANDLE_FLAG_INHERIT != 0,
                    "protect": h.flags & objmgr::handle::HANDLE_FLAG_PROTECT_FROM_CLOSE != 0,
                    "name": h.path,
                })
            })
            .collect();
        out = document(json!({ "handles": rows }));
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

fn stat(name: &str, json: bool) -> Result<(), Failure> {
    let entry = admin::stat_object(name).map_err(|e| not_found_without_broker(e, name))?;
    if json {
        print_out(&document(entry_json(&entry)));
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

fn dump(name: &str, offset: u64, len: Option<u64>) -> Result<(), Failure> {
    let section =
        Section::open(name, MapAccess::READ).map_err(|e| not_found_without_broker(e, name))?;
    let size = section.size();
    if offset > size || len.is_some_and(|len| offset.saturating_add(len) > size) {
        return Err(Failure::Win32(Error::new(
            ERROR_INVALID_PARAMETER,
            format!(
                "range {}+{} is outside the {size}-byte section",
                offset,
                len.unwrap_or(0)
            ),
        )));
    }
    let len = len.unwrap_or(size - offset);
    if len == 0 {
        return Ok(());
    }
    // Map the whole section (views start at 64 KiB granules, or at huge-page
    // boundaries for large-page sections; mapping costs address space only).
    let view = section.map(MapAccess::READ)?;
    let mut stdout = std::io::stdout().lock();
    let mut line = [0u8; 16];
    let mut pos = offset;
    let end = offset + len;
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
    let requests: Map<String, Value> = s
        .requests
        .iter()
        .map(|(name, n)| (name.clone(), json!(n)))
        .collect();
    document(json!({
        "pid": s.pid,
        "protocol_version": s.protocol_version,
        "uptime_ms": s.uptime_ms,
        "socket": s.socket,
        "clients": s.clients,
        "objects": s.objects,
        "named_objects": s.named_objects,
        "handles": s.handles,
        "idle_timeout_ms": s.idle_timeout_ms,
        "processes_tracked": s.processes_tracked,
        "pending_tables": s.pending_tables,
        "requests": requests,
        "paged_requests": s.paged_requests,
    }))
}

fn broker(action: BrokerAction) -> Result<(), Failure> {
    match action {
        BrokerAction::Status { json } => {
            let status = admin::broker_status().map_err(|e| {
                if e.code() == ERROR_SERVICE_NOT_ACTIVE {
                    Failure::NoBroker(e.to_string())
                } else {
                    Failure::Win32(e)
                }
            })?;
            if json {
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
            // (Counted in the opcodes' figures above too.)
            let _ = writeln!(
                out,
                "  of which paged {} (left in a process's page)",
                status.paged_requests
            );
            print_out(&out);
            Ok(())
        }
        BrokerAction::Stop => match admin::shutdown_broker() {
            Ok(()) => Ok(()),
            Err(e) if e.code() == ERROR_SERVICE_NOT_ACTIVE => {
                eprintln!("objmgr: no broker is running");
                Ok(())
            }
            Err(e) => Err(e.into()),
        },
    }
}
