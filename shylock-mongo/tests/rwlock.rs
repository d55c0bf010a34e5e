//! The read/write lock conformance suite against a real MongoDB-wire
//! server. Needs `MONGODB_URI`, like `conformance.rs`.

use std::sync::OnceLock;
use std::time::Duration;

use shylock_core::testkit::{server_url, unique_store_name};
use shylock_core::SharedBackend;
use shylock_mongo::mongodb::{options::ClientOptions, Client};
use shylock_mongo::MongoBackend;

fn run_database() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| unique_store_name("shylock_rw"))
}

async fn mongo() -> SharedBackend {
    let uri = server_url("MONGODB_URI");
    let mut options = ClientOptions::parse(&uri)
        .await
        .expect("invalid MONGODB_URI");
    options.server_selection_timeout = Some(Duration::from_secs(10));
    let client = Client::with_options(options).unwrap();
    MongoBackend::builder(client.database(run_database()))
        .build()
        .await
        .expect("could not set up the lock collection")
        .into()
}

#[cfg(not(feature = "testcontainers"))]
shylock_core::conformance_tests!(mongo(), ignore = "needs MONGODB_URI", groups = [rwlocks]);
#[cfg(feature = "testcontainers")]
shylock_core::conformance_tests!(mongo(), groups = [rwlocks]);
