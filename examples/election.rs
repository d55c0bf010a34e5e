//! Leader election across processes on the embedded SQLite default: three
//! candidate processes campaign for "scheduler"; the leader is killed with
//! SIGKILL; a follower takes over once the dead leader's lease runs out.
//! Prints the timeline and the failover time.
//!
//! ```sh
//! cargo run --example election
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use shylock::{Election, LockOptions, Role, SqliteBackend};

const TTL: Duration = Duration::from_secs(2);

fn options() -> LockOptions {
    LockOptions::default()
        .ttl(TTL)
        .backoff(Duration::from_millis(5), Duration::from_millis(100))
}

/// A candidate process: prints its role whenever it changes.
fn candidate(id: &str, db: &str) -> shylock::Result<()> {
    let backend = SqliteBackend::open(db)?;
    let campaign = Election::with_backend("scheduler", id, backend)
        .with_options(options())
        .campaign()?;
    let mut roles = campaign.subscribe();
    shylock::block_on("election", async move {
        loop {
            let role = roles.borrow_and_update().clone();
            match role {
                Role::Leader { term } => println!("leads term {term}"),
                Role::Follower { leader: Some(l) } => println!("follows {l}"),
                Role::Follower { leader: None } => println!("follows (no leader seen)"),
            }
            if roles.changed().await.is_err() {
                return Ok(());
            }
        }
    })
}

fn main() -> shylock::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "--candidate" {
        return candidate(&args[2], &args[3]);
    }
    let dir = std::env::temp_dir().join(format!("shylock-election-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("could not create the example directory");
    let db = dir.join("locks.db").display().to_string();
    let start = Instant::now();
    let (tx, rx) = mpsc::channel::<(String, String, Duration)>();
    let mut children: Vec<(String, Child)> = Vec::new();
    for id in ["node-a", "node-b", "node-c"] {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .args(["--candidate", id, &db])
            .stdout(Stdio::piped())
            .spawn()
            .expect("could not start a candidate");
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, id_owned) = (tx.clone(), id.to_owned());
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let _ = tx.send((id_owned.clone(), line, start.elapsed()));
            }
        });
        children.push((id.to_owned(), child));
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("three candidates campaign for \"scheduler\" (ttl {TTL:?})\n");
    let mut leader: Option<String> = None;
    let mut kill_at: Option<Instant> = None;
    let mut killed_at: Option<Duration> = None;
    let deadline = start + Duration::from_secs(30);
    while Instant::now() < deadline {
        // Half a second into the first leadership, kill the leader.
        if let (Some(when), None, Some(id)) = (kill_at, killed_at, &leader) {
            if Instant::now() >= when {
                let (_, child) = children.iter_mut().find(|(c, _)| c == id).unwrap();
                child.kill().expect("kill"); // SIGKILL: no release
                let _ = child.wait();
                killed_at = Some(start.elapsed());
                println!(
                    "{:7.3}s  {id:<7} killed with SIGKILL while leading",
                    start.elapsed().as_secs_f64()
                );
            }
        }
        let Ok((id, line, at)) = rx.recv_timeout(Duration::from_millis(20)) else {
            continue;
        };
        println!("{:7.3}s  {id:<7} {line}", at.as_secs_f64());
        if !line.starts_with("leads") {
            continue;
        }
        match (killed_at, &leader) {
            (None, None) => {
                leader = Some(id.clone());
                kill_at = Some(Instant::now() + Duration::from_millis(500));
            }
            (Some(killed), Some(old)) if *old != id => {
                println!(
                    "\nfailover: {id} leads {:.3} s after {old} was killed (ttl {:.1} s: the \
                     dead leader's lease ran out, by the database's clock)",
                    (at - killed).as_secs_f64(),
                    TTL.as_secs_f64()
                );
                break;
            }
            _ => {}
        }
    }
    for (_, mut child) in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
    if killed_at.is_none() {
        eprintln!("nobody was elected within 30 s");
        std::process::exit(1);
    }
    Ok(())
}
