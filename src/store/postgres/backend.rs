//! PostgreSQL under the shared `Store` (`store::read`): pool connections, and
//! org and user records written with sqlx.

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgConnection, Postgres};

use super::*;
use crate::store::read::{Arg, Backend, Conn};

fn bind<'q>(
    q: Query<'q, Postgres, PgArguments>,
    arg: &Arg<'q>,
) -> Query<'q, Postgres, PgArguments> {
    match *arg {
        Arg::Int(v) => q.bind(v),
        Arg::Text(v) => q.bind(v),
        Arg::Input(v) => q.bind(oclean(v)),
        Arg::Bool(v) => q.bind(v),
        Arg::Time(v) => q.bind(v),
        Arg::Limit(v) => q.bind(v),
    }
}

fn query<'q>(sql: &'static str, args: &[Arg<'q>]) -> Query<'q, Postgres, PgArguments> {
    args.iter().fold(sqlx::query(sql), bind)
}

#[async_trait]
impl Conn for PgConnection {
    type Row = PgRow;

    async fn all(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<Vec<PgRow>> {
        query(sql, args).fetch_all(self).await.q()
    }

    async fn opt(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<Option<PgRow>> {
        query(sql, args).fetch_optional(self).await.q()
    }

    async fn run(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64> {
        Ok(query(sql, args).execute(self).await.q()?.rows_affected())
    }
}

#[async_trait]
impl Backend for PgStore {
    type Conn = PgConnection;
    type Pooled = PoolConnection<Postgres>;
    type Write = Transaction<'static, Postgres>;
    const CLAIM_OUTBOX: &'static str = sql::CLAIM_OUTBOX_SKIP_LOCKED;
    const LOOKS_AHEAD: bool = true;
    const MIGRATIONS_TABLE_EXISTS: &'static str = "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = '_sqlx_migrations'";

    async fn conn(&self) -> Result<Self::Pooled> {
        self.pool.acquire().await.q()
    }

    async fn write(&self) -> Result<Self::Write> {
        self.pool.begin().await.q()
    }

    async fn commit(write: Self::Write) -> Result<()> {
        write.commit().await.q()
    }

    async fn run_migrations(&self) -> Result<()> {
        Self::migrator().run(&self.pool).await?;
        Ok(())
    }

    fn migrator() -> sqlx::migrate::Migrator {
        sqlx::migrate!("./migrations/postgres")
    }

    async fn backup(&self, _path: &std::path::Path) -> Result<()> {
        Err(StoreError::Invalid(
            "a PostgreSQL store is backed up with pg_dump (README: Backup and restore)".into(),
        ))
    }

    async fn begin_tx(&self) -> Result<Box<dyn Tx>> {
        // Generic plans for the transaction's statements: each is a key
        // lookup or a single-row write, whose plan does not depend on the
        // values. Without this the server replans the first five executions
        // of every prepared statement, and any whose generic plan it costs
        // higher (the `email = $1 OR id = $2` user lookup, `= ANY($1)`),
        // on every execution: a tenth of a delivery's server time.
        let tx = self
            .pool
            .begin_with("BEGIN; SET LOCAL plan_cache_mode = force_generic_plan")
            .await
            .q()?;
        Ok(Box::new(PgTx::new(tx)))
    }

    async fn create_org(&self, name: &str, slug: &str, domains: &[String]) -> Result<Org> {
        let mut tx = self.pool.begin().await.q()?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO orgs (slug, name, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(slug)
        .bind(clean(name))
        .bind(OffsetDateTime::now_utc())
        .fetch_one(&mut *tx)
        .await
        .q()?;
        for domain in domains {
            sqlx::query("INSERT INTO org_domains (domain, org_id) VALUES ($1, $2)")
                .bind(domain.to_ascii_lowercase())
                .bind(id)
                .execute(&mut *tx)
                .await
                .q()?;
        }
        let org = org_details(&mut tx, id, slug.to_string(), name.to_string()).await?;
        tx.commit().await.q()?;
        Ok(org)
    }

    async fn org_named(&self, name_or_slug: &str) -> Result<Option<Org>> {
        let mut conn = self.pool.acquire().await.q()?;
        org_where(&mut conn, name_or_slug.trim()).await
    }

    async fn create_user(&self, user: &NewUser) -> Result<User> {
        let mut conn = self.pool.acquire().await.q()?;
        insert_user(&mut conn, user, OffsetDateTime::now_utc()).await
    }

    fn store_health(&self) -> &crate::health::StoreHealth {
        &self.health
    }
}
