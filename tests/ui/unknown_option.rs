#[shylock::locked("report-{user_id}", retries = "3")]
async fn report(user_id: u64) -> Result<(), shylock::Error> {
    let _ = user_id;
    Ok(())
}

fn main() {}
