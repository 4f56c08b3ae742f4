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
//!
//! Synchronization objects go into a second list, addressed by index (`I`):
//!
//! | command                                   | does                                         |
//! |-------------------------------------------|----------------------------------------------|
//! | `event NAME manual|auto 0|1`              | `CreateEvent` (`-` = unnamed)                |
//! | `mutex NAME 0|1` / `semaphore NAME INIT MAX` / `timer NAME manual|auto` | create |
//! | `open_event|open_mutex|open_semaphore|open_timer NAME [ACCESS]` | open (hex access) |
//! | `set I` / `reset I` / `pulse I`           | event operations                             |
//! | `release I [N]`                           | `ReleaseMutex` / `ReleaseSemaphore` (prints the previous count) |
//! | `wait I MS` / `wait_any I,J MS` / `wait_all I,J MS` | waits (`inf` = forever); prints `wait object N`, `wait abandoned N` or `wait timeout` |
//! | `signal_wait I J MS`                      | `SignalObjectAndWait`                        |
//! | `settimer I DUE PERIOD_MS` / `cancel I`   | `SetWaitableTimer` (100 ns units) / cancel   |
//! | `closeobj I`                              | close object I (later indices shift down)    |
//! | `thread_lock I`                           | a thread locks mutex I and exits holding it  |
//! | `thread_lock_hold I`                      | the same, but the thread prints `@@thread holding` and exits only after a stdin line |
//! | `requests`                                | broker requests so far, except `status`      |
//! | `exclusive I,J OFF ITER CAP`              | ITER times: wait-all on I,J, count holders in the last view's counter at OFF+4*I for each object I (more than CAP at once is a violation), release |
//! | `twait I MS`                              | `wait`, also printing `after=` elapsed ms    |
//! | `settimer_abs I MS`                       | `SetWaitableTimer` at an absolute FILETIME MS from now |
//! | `churn EVENT SEM MUTEX N`                 | N rounds of set+wait, release+wait, lock+release |
//! | `many_events N`                           | N unnamed events; prints fds and mappings added |
//! | `fork_sleep`                              | fork a child that sleeps 60 s; prints `forked PID` |

use objmgr::{
    Error, Event, MapAccess, MapOptions, Mutex, PageProtection, Reset, Section, Semaphore, View,
    WaitOutcome, Waitable, WaitableTimer,
};
use std::io::BufRead;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

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

/// A synchronization object of any type.
enum Obj {
    Event(Event),
    Mutex(Mutex),
    Semaphore(Semaphore),
    Timer(WaitableTimer),
}

impl Obj {
    fn waitable(&self) -> &dyn Waitable {
        match self {
            Obj::Event(o) => o,
            Obj::Mutex(o) => o,
            Obj::Semaphore(o) => o,
            Obj::Timer(o) => o,
        }
    }

    fn existed(&self) -> bool {
        match self {
            Obj::Event(o) => o.existed(),
            Obj::Mutex(o) => o.existed(),
            Obj::Semaphore(o) => o.existed(),
            Obj::Timer(o) => o.existed(),
        }
    }
}

fn reset(word: &str) -> Reset {
    if word == "manual" {
        Reset::Manual
    } else {
        Reset::Auto
    }
}

fn timeout(word: &str) -> Option<Duration> {
    (word != "inf").then(|| Duration::from_millis(word.parse().unwrap()))
}

fn indices(word: &str) -> Vec<usize> {
    word.split(',').map(|i| i.parse().unwrap()).collect()
}

fn outcome(o: WaitOutcome) -> String {
    match o {
        WaitOutcome::Object(n) => format!("wait object {n}"),
        WaitOutcome::Abandoned(n) => format!("wait abandoned {n}"),
        WaitOutcome::Timeout => "wait timeout".into(),
    }
}

fn release(obj: &Obj, count: u32) -> Result<String, Error> {
    Ok(match obj {
        Obj::Mutex(m) => {
            m.release()?;
            "released".into()
        }
        Obj::Semaphore(s) => format!("released previous={}", s.release(count)?),
        _ => panic!("release of an event or timer"),
    })
}

/// Repeatedly takes `objs` together and checks that at most `cap` holders
/// (processes or threads) have each of them at once: each object has a
/// counter of holders in the view. Returns how many violations were seen and
/// how many waits reported abandonment.
fn exclusive(
    all: &[Obj],
    which: &[usize],
    view: &View,
    offset: usize,
    iterations: u32,
    cap: u32,
) -> (u32, u32) {
    let objs: Vec<&Obj> = which.iter().map(|&i| &all[i]).collect();
    let waitables: Vec<&dyn Waitable> = objs.iter().map(|o| o.waitable()).collect();
    let cells: Vec<_> = which
        .iter()
        .map(|&i| view.atomic_u32(offset + 4 * i).unwrap())
        .collect();
    let (mut violations, mut abandoned) = (0, 0);
    for _ in 0..iterations {
        match objmgr::wait_all(&waitables, None).unwrap() {
            WaitOutcome::Abandoned(_) => abandoned += 1,
            WaitOutcome::Object(_) => {}
            WaitOutcome::Timeout => unreachable!("infinite wait"),
        }
        for cell in &cells {
            if cell.fetch_add(1, Ordering::SeqCst) >= cap {
                violations += 1;
            }
        }
        std::thread::yield_now();
        for cell in &cells {
            cell.fetch_sub(1, Ordering::SeqCst);
        }
        for o in &objs {
            release(o, 1).unwrap();
        }
    }
    (violations, abandoned)
}

pub fn run_script(script: &str) {
    let mut objs: Vec<Obj> = Vec::new();
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
                "event" => {
                    let o =
                        Event::create(name(words[1]).as_deref(), reset(words[2]), words[3] == "1")?;
                    objs.push(Obj::Event(o));
                    format!("event existed={}", objs.last().unwrap().existed() as u8)
                }
                "mutex" => {
                    let o = Mutex::create(name(words[1]).as_deref(), words[2] == "1")?;
                    objs.push(Obj::Mutex(o));
                    format!("mutex existed={}", objs.last().unwrap().existed() as u8)
                }
                "semaphore" => {
                    let o = Semaphore::create(
                        name(words[1]).as_deref(),
                        words[2].parse().unwrap(),
                        words[3].parse().unwrap(),
                    )?;
                    objs.push(Obj::Semaphore(o));
                    format!("semaphore existed={}", objs.last().unwrap().existed() as u8)
                }
                "timer" => {
                    let o = WaitableTimer::create(name(words[1]).as_deref(), reset(words[2]))?;
                    objs.push(Obj::Timer(o));
                    format!("timer existed={}", objs.last().unwrap().existed() as u8)
                }
                "open_event" | "open_mutex" | "open_semaphore" | "open_timer" => {
                    let n = name(words[1]).unwrap_or_default();
                    let access = words.get(2).map(|a| u32::from_str_radix(a, 16).unwrap());
                    objs.push(match (words[0], access) {
                        ("open_event", None) => Obj::Event(Event::open(&n)?),
                        ("open_event", Some(a)) => Obj::Event(Event::open_with(&n, a, false)?),
                        ("open_mutex", None) => Obj::Mutex(Mutex::open(&n)?),
                        ("open_mutex", Some(a)) => Obj::Mutex(Mutex::open_with(&n, a, false)?),
                        ("open_semaphore", None) => Obj::Semaphore(Semaphore::open(&n)?),
                        ("open_semaphore", Some(a)) => {
                            Obj::Semaphore(Semaphore::open_with(&n, a, false)?)
                        }
                        (_, None) => Obj::Timer(WaitableTimer::open(&n)?),
                        (_, Some(a)) => Obj::Timer(WaitableTimer::open_with(&n, a, false)?),
                    });
                    "opened".into()
                }
                "set" | "reset" | "pulse" => {
                    let Obj::Event(e) = &objs[words[1].parse::<usize>().unwrap()] else {
                        panic!("not an event")
                    };
                    match words[0] {
                        "set" => e.set()?,
                        "reset" => e.reset()?,
                        _ => e.pulse()?,
                    }
                    words[0].into()
                }
                "release" => release(
                    &objs[words[1].parse::<usize>().unwrap()],
                    words.get(2).map_or(1, |n| n.parse().unwrap()),
                )?,
                "wait" => outcome(objmgr::wait_any(
                    &[objs[words[1].parse::<usize>().unwrap()].waitable()],
                    timeout(words[2]),
                )?),
                "wait_any" | "wait_all" => {
                    let list: Vec<&dyn Waitable> = indices(words[1])
                        .iter()
                        .map(|&i| objs[i].waitable())
                        .collect();
                    let f = if words[0] == "wait_any" {
                        objmgr::wait_any
                    } else {
                        objmgr::wait_all
                    };
                    outcome(f(&list, timeout(words[2]))?)
                }
                "signal_wait" => outcome(objmgr::signal_and_wait(
                    objs[words[1].parse::<usize>().unwrap()].waitable(),
                    objs[words[2].parse::<usize>().unwrap()].waitable(),
                    timeout(words[3]),
                )?),
                "settimer" | "cancel" => {
                    let Obj::Timer(t) = &objs[words[1].parse::<usize>().unwrap()] else {
                        panic!("not a timer")
                    };
                    if words[0] == "cancel" {
                        t.cancel()?;
                    } else {
                        t.set(words[2].parse().unwrap(), words[3].parse().unwrap())?;
                    }
                    words[0].into()
                }
                "closeobj" => {
                    match objs.remove(words[1].parse::<usize>().unwrap()) {
                        Obj::Event(o) => o.close()?,
                        Obj::Mutex(o) => o.close()?,
                        Obj::Semaphore(o) => o.close()?,
                        Obj::Timer(o) => o.close()?,
                    }
                    "closed".into()
                }
                "thread_lock" | "thread_lock_hold" => {
                    let Obj::Mutex(m) = &objs[words[1].parse::<usize>().unwrap()] else {
                        panic!("not a mutex")
                    };
                    let hold = words[0] == "thread_lock_hold";
                    std::thread::scope(|s| {
                        s.spawn(|| {
                            std::mem::forget(m.lock().unwrap());
                            if hold {
                                println!("@@thread holding");
                                let mut line = String::new();
                                let _ = std::io::stdin().lock().read_line(&mut line);
                            }
                        })
                        .join()
                        .unwrap();
                    });
                    "thread exited".into()
                }
                "requests" => {
                    let status = objmgr::admin::broker_status()?;
                    let total: u64 = status
                        .requests
                        .iter()
                        .filter(|(name, _)| name != "status")
                        .map(|(_, n)| n)
                        .sum();
                    format!("requests {total}")
                }
                "exclusive" => {
                    let (violations, abandoned) = exclusive(
                        &objs,
                        &indices(words[1]),
                        views.last().unwrap(),
                        words[2].parse().unwrap(),
                        words[3].parse().unwrap(),
                        words[4].parse().unwrap(),
                    );
                    format!("exclusive violations={violations} abandoned={abandoned}")
                }
                "twait" => {
                    let start = std::time::Instant::now();
                    let result = objmgr::wait_any(
                        &[objs[words[1].parse::<usize>().unwrap()].waitable()],
                        timeout(words[2]),
                    )?;
                    format!("{} after={}", outcome(result), start.elapsed().as_millis())
                }
                "settimer_abs" => {
                    let Obj::Timer(t) = &objs[words[1].parse::<usize>().unwrap()] else {
                        panic!("not a timer")
                    };
                    let unix = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap();
                    let filetime = (unix.as_nanos() / 100) as i64 + 116_444_736_000_000_000;
                    let ms: i64 = words[2].parse().unwrap();
                    t.set(filetime + ms * 10_000, 0)?;
                    "settimer".into()
                }
                "churn" => {
                    let at = |i: usize| &objs[words[i].parse::<usize>().unwrap()];
                    let (Obj::Event(e), Obj::Semaphore(s), Obj::Mutex(m)) = (at(1), at(2), at(3))
                    else {
                        panic!("churn EVENT SEMAPHORE MUTEX N")
                    };
                    for _ in 0..words[4].parse::<u32>().unwrap() {
                        e.set()?;
                        e.wait(None)?;
                        s.release(1)?;
                        s.wait(None)?;
                        drop(m.lock()?);
                    }
                    "churned".into()
                }
                "many_events" => {
                    let count = |path: &str| std::fs::read_dir(path).map_or(0, |d| d.count());
                    let maps = || {
                        std::fs::read_to_string("/proc/self/maps")
                            .unwrap()
                            .lines()
                            .count()
                    };
                    let (fds0, maps0) = (count("/proc/self/fd"), maps());
                    let n: usize = words[1].parse().unwrap();
                    let mut events = Vec::with_capacity(n);
                    for _ in 0..n {
                        events.push(Event::create(None, Reset::Auto, false)?);
                    }
                    // They all work: signal the last, wait on it.
                    events.last().unwrap().set()?;
                    let last = outcome(events.last().unwrap().wait(Some(Duration::ZERO))?);
                    format!(
                        "many_events fds+={} maps+={} {last}",
                        count("/proc/self/fd") - fds0,
                        maps() - maps0
                    )
                }
                "fork_sleep" => {
                    // SAFETY: the child only calls async-signal-safe functions
                    // (sleep, _exit) before exiting.
                    let pid = unsafe { libc::fork() };
                    if pid == 0 {
                        // SAFETY: as above.
                        unsafe {
                            libc::sleep(60);
                            libc::_exit(0);
                        }
                    }
                    format!("forked {pid}")
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
