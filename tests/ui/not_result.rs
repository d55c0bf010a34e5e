#[shylock::locked("report-{user_id}")]
async fn report(user_id: u64) -> u64 {
    user_id
}

fn main() {}
