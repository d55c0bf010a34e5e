#[shylock::locked("report-{user}")]
async fn report(user_id: u64) -> Result<(), shylock::Error> {
    let _ = user_id;
    Ok(())
}

fn main() {}
