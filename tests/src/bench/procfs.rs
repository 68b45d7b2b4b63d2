//! CPU time and memory of processes and threads, read from `/proc` (Linux only).
//!
//! CPU time is `utime + stime` of `/proc/<pid>/stat` (or of each `/proc/self/task/<tid>/stat`),
//! in clock ticks converted with `getconf CLK_TCK`. Memory is `VmRSS` (now) and `VmHWM` (peak)
//! of `/proc/<pid>/status`.

use std::{
    fs,
    path::Path,
    sync::OnceLock,
    time::{Duration, Instant},
};

/// Clock ticks per second (`getconf CLK_TCK`, 100 when it cannot be asked).
pub fn ticks_per_s() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// The fields of a `stat` file after the command name: index 0 is field 3 (`state`).
fn stat_fields(text: &str) -> Option<Vec<&str>> {
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().collect())
}

/// `utime + stime` (ticks) and the parent pid of a `stat` file's content.
fn parse_stat(text: &str) -> Option<(u64, u32)> {
    let f = stat_fields(text)?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let ppid: u32 = f.get(1)?.parse().ok()?;
    Some((utime + stime, ppid))
}

fn stat_ticks(path: &Path) -> Option<u64> {
    parse_stat(&fs::read_to_string(path).ok()?).map(|(ticks, _)| ticks)
}

fn comm(dir: &Path) -> Option<String> {
    fs::read_to_string(dir.join("comm"))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// CPU seconds a process has used so far (`None`: it is gone).
pub fn process_cpu_s(pid: u32) -> Option<f64> {
    stat_ticks(&Path::new("/proc").join(pid.to_string()).join("stat"))
        .map(|t| t as f64 / ticks_per_s())
}

/// CPU seconds used so far by this process's threads whose name starts with `prefix`.
pub fn own_threads_cpu_s(prefix: &str) -> f64 {
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let ticks: u64 = tasks
        .flatten()
        .filter(|t| comm(&t.path()).is_some_and(|c| c.starts_with(prefix)))
        .filter_map(|t| stat_ticks(&t.path().join("stat")))
        .sum();
    ticks as f64 / ticks_per_s()
}

fn pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// CPU seconds used so far by every live process named `name` (e.g. all PostgreSQL backends).
pub fn processes_cpu_s(name: &str) -> f64 {
    let ticks: u64 = pids()
        .into_iter()
        .map(|pid| Path::new("/proc").join(pid.to_string()))
        .filter(|dir| comm(dir).as_deref() == Some(name))
        .filter_map(|dir| stat_ticks(&dir.join("stat")))
        .sum();
    ticks as f64 / ticks_per_s()
}

/// The first child of `parent` named `name`.
pub fn child_named(parent: u32, name: &str) -> Option<u32> {
    pids().into_iter().find(|pid| {
        let dir = Path::new("/proc").join(pid.to_string());
        comm(&dir).as_deref() == Some(name)
            && fs::read_to_string(dir.join("stat"))
                .ok()
                .and_then(|s| parse_stat(&s))
                .is_some_and(|(_, ppid)| ppid == parent)
    })
}

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the peak resident size so far.
    pub hwm_kib: u64,
}

fn parse_status(text: &str) -> Memory {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
    }
}

/// `VmRSS` and `VmHWM` of a process (`None`: it is gone).
pub fn memory(pid: u32) -> Option<Memory> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .map(|s| parse_status(&s))
}

/// Busy and total CPU ticks of the whole machine (`/proc/stat`, all cores).
fn machine_ticks() -> (u64, u64) {
    let Ok(text) = fs::read_to_string("/proc/stat") else {
        return (0, 0);
    };
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Logical CPUs of the machine.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The CPU model (`model name` of `/proc/cpuinfo`).
pub fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Total memory of the machine, in MiB.
pub fn mem_total_mib() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

/// The 1-minute load average (`/proc/loadavg`), as text.
pub fn loadavg_1m() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Whose CPU time a [`Probe`] reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct Probe {
    /// The rindle-ingest worker process, when one runs.
    pub worker: Option<u32>,
    /// The Temporal dev server process.
    pub server: Option<u32>,
}

/// CPU counters at one instant.
#[derive(Debug, Clone, Copy)]
pub struct CpuSnapshot {
    at: Instant,
    worker_s: f64,
    server_s: f64,
    postgres_s: f64,
    bench_s: f64,
    floor_s: f64,
    machine_busy: u64,
    machine_total: u64,
}

/// CPU used between two snapshots, by component.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    /// Wall-clock seconds between the snapshots.
    pub wall_s: f64,
    /// The rindle-ingest worker process.
    pub worker_s: f64,
    /// The Temporal dev server.
    pub server_s: f64,
    /// Every `postgres` process of the machine (other users of the server included).
    pub postgres_s: f64,
    /// This process minus the floor worker: the client starting workflows, the Mux simulator
    /// and its webhooks, the database polling.
    pub bench_s: f64,
    /// The in-process floor worker's threads.
    pub floor_s: f64,
    /// Busy share of all cores of the machine, in percent.
    pub machine_busy_pct: f64,
    /// CPU seconds the machine spent on anything else (the kernel, other processes): what
    /// was busy minus the components above. Large values mean the figures were disturbed.
    pub other_s: f64,
}

impl Probe {
    /// Reads every counter now.
    pub fn snapshot(&self) -> CpuSnapshot {
        let (machine_busy, machine_total) = machine_ticks();
        let floor_s = own_threads_cpu_s(super::floor::FLOOR_THREAD_NAME);
        CpuSnapshot {
            at: Instant::now(),
            worker_s: self.worker.and_then(process_cpu_s).unwrap_or(0.0),
            server_s: self.server.and_then(process_cpu_s).unwrap_or(0.0),
            postgres_s: processes_cpu_s("postgres"),
            bench_s: process_cpu_s(std::process::id()).unwrap_or(0.0) - floor_s,
            floor_s,
            machine_busy,
            machine_total,
        }
    }
}

impl CpuSnapshot {
    /// What was used from `self` until `later`.
    pub fn until(&self, later: &CpuSnapshot) -> CpuUse {
        let total = later.machine_total.saturating_sub(self.machine_total);
        let busy = later.machine_busy.saturating_sub(self.machine_busy);
        let busy_s = busy as f64 / ticks_per_s();
        let worker_s = (later.worker_s - self.worker_s).max(0.0);
        let server_s = (later.server_s - self.server_s).max(0.0);
        let postgres_s = (later.postgres_s - self.postgres_s).max(0.0);
        let bench_s = (later.bench_s - self.bench_s).max(0.0);
        let floor_s = (later.floor_s - self.floor_s).max(0.0);
        CpuUse {
            other_s: (busy_s - worker_s - server_s - postgres_s - bench_s - floor_s).max(0.0),
            wall_s: later
                .at
                .saturating_duration_since(self.at)
                .max(Duration::from_micros(1))
                .as_secs_f64(),
            worker_s,
            server_s,
            postgres_s,
            bench_s,
            floor_s,
            machine_busy_pct: if total == 0 {
                0.0
            } else {
                100.0 * busy as f64 / total as f64
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_spaces_in_the_name_parse() {
        let line =
            "1234 (tokio runtime) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 5 0";
        assert_eq!(parse_stat(line), Some((325, 1)));
    }

    #[test]
    fn status_memory_fields_parse() {
        let status = "Name:\tx\nVmHWM:\t  20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(
            parse_status(status),
            Memory {
                rss_kib: 10240,
                hwm_kib: 20480
            }
        );
    }

    #[test]
    fn this_process_is_readable() {
        assert!(process_cpu_s(std::process::id()).is_some());
        assert!(memory(std::process::id()).unwrap().rss_kib > 0);
        assert!(cores() >= 1);
    }
}
