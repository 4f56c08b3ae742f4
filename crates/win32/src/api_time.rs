//! Time as Windows counts it: `FILETIME` (100 ns since 1601, UTC) and
//! `SYSTEMTIME` (calendar fields), `GetSystemTime(AsFileTime)`,
//! `GetLocalTime`, and the conversions between them (local time from the
//! C library's time zone).
#![allow(non_snake_case, clippy::missing_safety_doc)]

use objmgr_proto::error::*;

use crate::api_sync::exports;
use crate::ffi;
use crate::last_error::{fail, guard};
use crate::types::*;

/// 100-nanosecond intervals from 1601 to 1970.
pub(crate) const UNIX_EPOCH_TICKS: i64 = 116_444_736_000_000_000;
const TICKS_PER_SECOND: i64 = 10_000_000;
const TICKS_PER_DAY: i64 = 86_400 * TICKS_PER_SECOND;
/// The last `FILETIME` `FileTimeToSystemTime` accepts (year 30827).
const MAX_TICKS: i64 = 0x7FFF_35F4_F06C_58F0 - 1;

/// Seconds and nanoseconds since 1970 as `FILETIME` ticks (0 before 1601).
pub(crate) fn ticks_from_unix(secs: i64, nanos: i64) -> i64 {
    secs.saturating_mul(TICKS_PER_SECOND)
        .saturating_add(nanos / 100)
        .saturating_add(UNIX_EPOCH_TICKS)
        .max(0)
}

/// Now, in `FILETIME` ticks.
pub(crate) fn now_ticks() -> i64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    ticks_from_unix(now.tv_sec, now.tv_nsec)
}

pub(crate) fn to_filetime(ticks: i64) -> FILETIME {
    FILETIME {
        dwLowDateTime: ticks as u32,
        dwHighDateTime: (ticks as u64 >> 32) as u32,
    }
}

fn from_filetime(ft: FILETIME) -> i64 {
    ((u64::from(ft.dwHighDateTime) << 32) | u64::from(ft.dwLowDateTime)) as i64
}

/// Days since 1601-01-01 of a proleptic Gregorian date (Hinnant's method).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    // Days since 0000-03-01, moved to 1601-01-01.
    era * 146_097 + doe - 584_694
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 584_694;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn system_time(ticks: i64) -> SYSTEMTIME {
    let days = ticks.div_euclid(TICKS_PER_DAY);
    let rest = ticks.rem_euclid(TICKS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    SYSTEMTIME {
        wYear: year as u16,
        wMonth: month as u16,
        // 1601-01-01 was a Monday.
        wDayOfWeek: ((days + 1).rem_euclid(7)) as u16,
        wDay: day as u16,
        wHour: (rest / (3600 * TICKS_PER_SECOND)) as u16,
        wMinute: (rest / (60 * TICKS_PER_SECOND) % 60) as u16,
        wSecond: (rest / TICKS_PER_SECOND % 60) as u16,
        wMilliseconds: (rest / 10_000 % 1000) as u16,
    }
}

fn ticks_of(st: &SYSTEMTIME) -> Option<i64> {
    let days_in = |y: i64, m: i64| match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    };
    let (y, m, d) = (
        i64::from(st.wYear),
        i64::from(st.wMonth),
        i64::from(st.wDay),
    );
    let valid = (1601..=30827).contains(&y)
        && (1..=12).contains(&m)
        && d >= 1
        && d <= days_in(y, m)
        && st.wHour < 24
        && st.wMinute < 60
        && st.wSecond < 60
        && st.wMilliseconds < 1000;
    valid.then(|| {
        days_from_civil(y, m, d) * TICKS_PER_DAY
            + (i64::from(st.wHour) * 3600 + i64::from(st.wMinute) * 60 + i64::from(st.wSecond))
                * TICKS_PER_SECOND
            + i64::from(st.wMilliseconds) * 10_000
    })
}

/// The local time zone's offset from UTC at `ticks` (UTC), in ticks.
fn local_offset(ticks: i64) -> i64 {
    let secs = (ticks - UNIX_EPOCH_TICKS).div_euclid(TICKS_PER_SECOND) as libc::time_t;
    // SAFETY: localtime_r writes the broken-down time into `tm`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals.
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        return 0;
    }
    tm.tm_gmtoff * TICKS_PER_SECOND
}

unsafe fn put_system_time(out: *mut SYSTEMTIME, ticks: i64) -> BOOL {
    // SAFETY: NULL or writable per the Win32 contract.
    if unsafe { ffi::put(out, system_time(ticks)) } {
        TRUE
    } else {
        fail(ERROR_NOACCESS, FALSE)
    }
}

unsafe fn file_time_to_system_time(ft: *const FILETIME, out: *mut SYSTEMTIME) -> BOOL {
    // SAFETY: NULL or readable per the Win32 contract.
    match unsafe { ffi::get(ft) }.map(from_filetime) {
        // SAFETY: NULL or writable per the Win32 contract.
        Some(ticks) if (0..=MAX_TICKS).contains(&ticks) => unsafe { put_system_time(out, ticks) },
        _ => fail(ERROR_INVALID_PARAMETER, FALSE),
    }
}

unsafe fn system_time_to_file_time(st: *const SYSTEMTIME, out: *mut FILETIME) -> BOOL {
    // SAFETY: NULL or readable per the Win32 contract.
    match unsafe { ffi::get(st) }.as_ref().and_then(ticks_of) {
        // SAFETY: NULL or writable per the Win32 contract.
        Some(ticks) if unsafe { ffi::put(out, to_filetime(ticks)) } => TRUE,
        _ => fail(ERROR_INVALID_PARAMETER, FALSE),
    }
}

/// `FileTimeToLocalFileTime` (`to_local`) and its inverse.
unsafe fn shift_file_time(ft: *const FILETIME, out: *mut FILETIME, to_local: bool) -> BOOL {
    // SAFETY: NULL or readable per the Win32 contract.
    let Some(ticks) = (unsafe { ffi::get(ft) }).map(from_filetime) else {
        return fail(ERROR_INVALID_PARAMETER, FALSE);
    };
    let shifted = if to_local {
        ticks.saturating_add(local_offset(ticks))
    } else {
        ticks.saturating_sub(local_offset(ticks))
    };
    // SAFETY: NULL or writable per the Win32 contract.
    if unsafe { ffi::put(out, to_filetime(shifted.max(0))) } {
        TRUE
    } else {
        fail(ERROR_INVALID_PARAMETER, FALSE)
    }
}

unsafe fn compare(a: *const FILETIME, b: *const FILETIME) -> i32 {
    // SAFETY: readable per the Win32 contract.
    let (a, b) = unsafe {
        (
            ffi::get(a).map(from_filetime),
            ffi::get(b).map(from_filetime),
        )
    };
    match a.cmp(&b) {
        std::cmp::Ordering::Less => -1,
        std::cmp::Ordering::Equal => 0,
        std::cmp::Ordering::Greater => 1,
    }
}

exports! {
    fn GetSystemTimeAsFileTime(out: *mut FILETIME) -> () = () => { ffi::put(out, to_filetime(now_ticks())); };
    fn GetSystemTimePreciseAsFileTime(out: *mut FILETIME) -> () = () => { ffi::put(out, to_filetime(now_ticks())); };
    fn GetSystemTime(out: *mut SYSTEMTIME) -> () = () => { put_system_time(out, now_ticks()); };
    fn GetLocalTime(out: *mut SYSTEMTIME) -> () = () => {
        let now = now_ticks();
        put_system_time(out, now + local_offset(now));
    };
    fn FileTimeToSystemTime(ft: *const FILETIME, out: *mut SYSTEMTIME) -> BOOL = FALSE => file_time_to_system_time(ft, out);
    fn SystemTimeToFileTime(st: *const SYSTEMTIME, out: *mut FILETIME) -> BOOL = FALSE => system_time_to_file_time(st, out);
    fn FileTimeToLocalFileTime(ft: *const FILETIME, out: *mut FILETIME) -> BOOL = FALSE => shift_file_time(ft, out, true);
    fn LocalFileTimeToFileTime(ft: *const FILETIME, out: *mut FILETIME) -> BOOL = FALSE => shift_file_time(ft, out, false);
    fn CompareFileTime(a: *const FILETIME, b: *const FILETIME) -> i32 = 0 => compare(a, b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips() {
        // 1970-01-01 00:00:00 UTC was a Thursday.
        let epoch = system_time(UNIX_EPOCH_TICKS);
        assert_eq!(
            (epoch.wYear, epoch.wMonth, epoch.wDay, epoch.wDayOfWeek),
            (1970, 1, 1, 4)
        );
        let st = SYSTEMTIME {
            wYear: 2024,
            wMonth: 2,
            wDayOfWeek: 4,
            wDay: 29,
            wHour: 23,
            wMinute: 59,
            wSecond: 58,
            wMilliseconds: 123,
        };
        assert_eq!(system_time(ticks_of(&st).unwrap()), st);
        assert_eq!(system_time(0).wYear, 1601);
        assert!(
            ticks_of(&SYSTEMTIME {
                wMonth: 2,
                wDay: 29,
                wYear: 2023,
                ..st
            })
            .is_none()
        );
        assert!(ticks_of(&SYSTEMTIME { wHour: 24, ..st }).is_none());
    }
}
