//! Both drivers behind one test body: the blocking one (`postgres`) and the tokio one
//! (`tokio-postgres`). A test written with [`on_both_drivers!`] runs once per driver, in process
//! (through [`Driver::connect`] and [`Driver::run_url`]) and in the host binary (through
//! [`Driver::host`], which sets `MIGRATE_TEST_DRIVER`).

use std::process::{Command, Output};

use migrate::{Error, Migrator, Report, Status};
use postgres::SimpleQueryMessage;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Blocking,
    Tokio,
}

/// A runtime for the tokio driver's calls. Multi-threaded, so that the connection tasks keep
/// running between two calls (a cancelled run's ROLLBACK still reaches the server).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A tokio-postgres connection on the current runtime, its connection task spawned there.
pub async fn connect_tokio(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

impl Driver {
    /// The value of `MIGRATE_TEST_DRIVER` for the host binary.
    pub fn name(self) -> &'static str {
        match self {
            Driver::Blocking => "blocking",
            Driver::Tokio => "tokio",
        }
    }

    /// The host binary on this driver.
    pub fn host(self, url: &str, set: &str, env: &[(&str, &str)]) -> Command {
        let mut cmd = super::host(url, set, env);
        cmd.env("MIGRATE_TEST_DRIVER", self.name());
        cmd
    }

    pub fn run_host(self, url: &str, set: &str, env: &[(&str, &str)]) -> Output {
        self.host(url, set, env).output().unwrap()
    }

    /// A connection of this driver, for the runner to borrow.
    pub fn connect(self, url: &str) -> DriverClient {
        match self {
            Driver::Blocking => {
                DriverClient::Blocking(postgres::Client::connect(url, postgres::NoTls).unwrap())
            }
            Driver::Tokio => {
                let runtime = runtime();
                let client = runtime.block_on(connect_tokio(url));
                DriverClient::Tokio { client, runtime }
            }
        }
    }

    /// `run_url` (the runner opens and reopens its connections) on this driver.
    pub fn run_url(self, migrator: &Migrator<'_>, url: &str) -> Result<Report, Error> {
        match self {
            Driver::Blocking => migrator.run_url(url),
            Driver::Tokio => runtime().block_on(migrator.run_url_async(url)),
        }
    }
}

/// A connection of either driver. The tokio one carries its runtime.
pub enum DriverClient {
    Blocking(postgres::Client),
    Tokio {
        client: tokio_postgres::Client,
        runtime: tokio::runtime::Runtime,
    },
}

impl DriverClient {
    pub fn run(&mut self, migrator: &Migrator<'_>) -> Result<Report, Error> {
        match self {
            DriverClient::Blocking(client) => migrator.run(client),
            DriverClient::Tokio { client, runtime } => runtime.block_on(migrator.run_async(client)),
        }
    }

    pub fn status(&mut self, migrator: &Migrator<'_>) -> Result<Status, Error> {
        match self {
            DriverClient::Blocking(client) => migrator.status(client),
            DriverClient::Tokio { client, runtime } => {
                runtime.block_on(migrator.status_async(client))
            }
        }
    }

    pub fn stamp(
        &mut self,
        migrator: &Migrator<'_>,
        revision: &str,
    ) -> Result<Vec<&'static str>, Error> {
        match self {
            DriverClient::Blocking(client) => migrator.stamp(client, revision),
            DriverClient::Tokio { client, runtime } => {
                runtime.block_on(migrator.stamp_async(client, revision))
            }
        }
    }

    pub fn simple_query(&mut self, sql: &str) -> Result<Vec<SimpleQueryMessage>, postgres::Error> {
        match self {
            DriverClient::Blocking(client) => client.simple_query(sql),
            DriverClient::Tokio { client, runtime } => runtime.block_on(client.simple_query(sql)),
        }
    }

    pub fn batch_execute(&mut self, sql: &str) -> Result<(), postgres::Error> {
        self.simple_query(sql).map(drop)
    }

    /// The first column of every row of `sql`.
    pub fn values(&mut self, sql: &str) -> Vec<String> {
        super::first_column(&self.simple_query(sql).unwrap())
    }
}

/// The runner's calls on a driver's connection, in the builder's own chain:
/// `Migrator::new(&SET).lock_timeout(t).run_on(&mut client)`.
pub trait OnDriver {
    fn run_on(&self, client: &mut DriverClient) -> Result<Report, Error>;
    fn status_on(&self, client: &mut DriverClient) -> Result<Status, Error>;
    fn stamp_on(
        &self,
        client: &mut DriverClient,
        revision: &str,
    ) -> Result<Vec<&'static str>, Error>;
    fn run_url_on(&self, driver: Driver, url: &str) -> Result<Report, Error>;
}

impl OnDriver for Migrator<'_> {
    fn run_on(&self, client: &mut DriverClient) -> Result<Report, Error> {
        client.run(self)
    }
    fn status_on(&self, client: &mut DriverClient) -> Result<Status, Error> {
        client.status(self)
    }
    fn stamp_on(
        &self,
        client: &mut DriverClient,
        revision: &str,
    ) -> Result<Vec<&'static str>, Error> {
        client.stamp(self, revision)
    }
    fn run_url_on(&self, driver: Driver, url: &str) -> Result<Report, Error> {
        driver.run_url(self, url)
    }
}

/// Defines `mod $name` with one test per driver, `$name::blocking` and `$name::tokio`, both
/// running the same body with `$driver` set to its driver.
#[allow(unused_macros)]
macro_rules! on_both_drivers {
    ($(#[$attr:meta])* fn $name:ident($driver:ident) $body:block) => {
        $(#[$attr])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::common::driver::Driver;

            fn body($driver: Driver) $body

            #[test]
            fn blocking() {
                body(Driver::Blocking)
            }

            #[test]
            fn tokio() {
                body(Driver::Tokio)
            }
        }
    };
}
pub(crate) use on_both_drivers;
