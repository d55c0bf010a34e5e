//! A multi-account transfer: eight tasks move money between five accounts,
//! each transfer holding both accounts' locks at once (all or nothing, in a
//! fixed order, so overlapping transfers never deadlock). The total stays
//! the same, and no account is ever written by two transfers at once.
//!
//! ```sh
//! cargo run --example transfer
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use shylock::{AsyncMultiLock, SqliteBackend};

#[tokio::main]
async fn main() -> shylock::Result<()> {
    let dir = std::env::temp_dir().join(format!("shylock-transfer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("could not create the example directory");
    let backend = SqliteBackend::open(dir.join("locks.db"))?;
    let accounts = ["alice", "bob", "carol", "dave", "erin"];
    // The "bank": balances, and the fencing token of each account's last
    // write (a store that refuses stale tokens would keep these).
    let bank: Arc<Mutex<HashMap<&str, (i64, u64)>>> = Arc::new(Mutex::new(
        accounts.iter().map(|a| (*a, (100, 0))).collect(),
    ));
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let (backend, bank) = (backend.clone(), bank.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..20 {
                let from = accounts[(worker + round) % accounts.len()];
                let to = accounts[(worker * 3 + round + 1) % accounts.len()];
                if from == to {
                    continue;
                }
                let names = [format!("acct/{from}"), format!("acct/{to}")];
                let guard = AsyncMultiLock::with_backend(names.clone(), backend.clone())
                    .acquire()
                    .await?;
                {
                    let mut bank = bank.lock().unwrap();
                    for (account, name) in [(from, &names[0]), (to, &names[1])] {
                        let token = guard.fencing_token(name).expect("held");
                        let (_, last) = bank[account];
                        assert!(token > last, "a stale holder wrote {account}");
                        bank.get_mut(account).unwrap().1 = token;
                    }
                    let amount = 1 + ((worker * 7 + round * 3) % 13) as i64;
                    bank.get_mut(from).unwrap().0 -= amount;
                    bank.get_mut(to).unwrap().0 += amount;
                }
                guard.release().await?;
            }
            shylock::Result::Ok(())
        }));
    }
    for task in tasks {
        task.await.expect("a transfer task panicked")?;
    }
    let bank = bank.lock().unwrap();
    let total: i64 = bank.values().map(|(balance, _)| balance).sum();
    for account in accounts {
        println!("{account:<6} {:>4}", bank[account].0);
    }
    println!("total  {total:>4} (started with 500)");
    assert_eq!(total, 500);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
