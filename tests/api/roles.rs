//! Postgres roles: nobody who can merely log in to the database runs code
//! through our functions, and the service runs as a role that owns its
//! database and nothing more.

use rocket::http::Status;
use sqlx::{Connection, Executor, PgConnection};

use crate::helpers::{
    claim, rejected_within, wait_until_trusted, Backend, Role, TestApp, TestDb, PROPAGATION_BOUND,
};

/// What the attacker tries with each trigger function of ours: a temp table
/// whose `jti` has a type of its own, with an assignment cast to uuid whose
/// function deletes every revocation and copies the password hashes, our
/// function attached to that table, and one row inserted. Each step may be
/// refused; the attacker carries on regardless. Returns the error of the
/// step that stopped it, if any.
async fn attack_through(conn: &mut PgConnection, function: &str) -> Option<String> {
    let steps = [
        "CREATE TYPE pg_temp.evil AS ENUM ('x')".to_owned(),
        "CREATE TEMP TABLE stolen (username text, password_hash text)".to_owned(),
        "CREATE FUNCTION pg_temp.evil_to_uuid(pg_temp.evil) RETURNS uuid LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO stolen SELECT username, password_hash FROM public.users;
             DELETE FROM public.revoked_tokens;
             RETURN gen_random_uuid();
         END $$"
            .to_owned(),
        "CREATE CAST (pg_temp.evil AS uuid) WITH FUNCTION pg_temp.evil_to_uuid(pg_temp.evil) AS ASSIGNMENT"
            .to_owned(),
        "CREATE TEMP TABLE bait (jti pg_temp.evil, expires_at timestamptz, reason text)".to_owned(),
        format!(
            "CREATE TRIGGER bait_log AFTER INSERT ON bait FOR EACH ROW EXECUTE FUNCTION public.{function}()"
        ),
        "INSERT INTO bait VALUES ('x', now() + interval '1 day', 'logout')".to_owned(),
    ];
    let mut stopped = None;
    for step in steps {
        if let Err(error) = conn.execute(step.as_str()).await {
            stopped.get_or_insert(format!("{step}: {error}"));
        }
    }
    stopped
}

/// The attack of issue 16, as a role with no grant at all, through every
/// trigger function the migrations define; and no other function of ours
/// is executable by such a role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_grants_cannot_run_code_through_our_functions() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let tokens = app.signup("alice").await;
    app.logout(&tokens.access).await;
    wait_until_trusted(&app).await;
    let listed = app.db.count("SELECT count(*) FROM revoked_tokens").await;
    assert_eq!(listed, 1, "the logged-out session");
    let stranger = Role::create("stranger").await;
    let mut conn = stranger.connect(&app.db).await;

    let functions: Vec<(String, bool, bool)> = sqlx::query_as(&format!(
        "SELECT p.proname, p.prorettype = 'trigger'::regtype,
                has_function_privilege('{}', p.oid, 'EXECUTE')
         FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace ORDER BY 1",
        stranger.name
    ))
    .fetch_all(&mut conn)
    .await
    .expect("the catalog is public");
    assert!(
        functions.iter().any(|(name, _, _)| name == "revoked_tokens_log_change"),
        "the migrations' functions: {functions:?}"
    );
    let mut stopped = Vec::new();
    for (function, _, _) in functions.iter().filter(|(_, is_trigger, _)| *is_trigger) {
        stopped.push((function, attack_through(&mut conn, function).await));
        // A fresh session for the next function: temp objects go with it.
        conn.close().await.expect("close");
        conn = stranger.connect(&app.db).await;
    }

    assert_eq!(app.db.count("SELECT count(*) FROM revoked_tokens").await, listed, "no revocation deleted");
    app.protected(&tokens.access).await.assert_token_error("token_revoked");
    let another = app.another_instance().await;
    wait_until_trusted(&another).await;
    another.protected(&tokens.access).await.assert_token_error("token_revoked");
    for (function, stopped) in stopped {
        assert!(stopped.is_some(), "nothing stopped the attack through {function}()");
    }
    for (function, _, executable) in &functions {
        assert!(!executable, "{function}() is executable by a role without grants");
    }
    conn.close().await.expect("close");
    stranger.drop().await;
}

/// Even its owner cannot make our trigger function serve another table: it
/// checks which table fired it before it reads the row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_trigger_refuses_to_run_for_another_table() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let mut conn = PgConnection::connect(&app.db.url()).await.expect("connect as the owner");
    conn.execute(
        "CREATE TABLE look_alike (jti uuid PRIMARY KEY, expires_at timestamptz, reason text);
         CREATE TRIGGER look_alike_log AFTER INSERT ON look_alike
             FOR EACH ROW EXECUTE FUNCTION revoked_tokens_log_change()",
    )
    .await
    .expect("the owner may attach it");

    let refused = conn
        .execute("INSERT INTO look_alike VALUES (gen_random_uuid(), now() + interval '1 day', 'logout')")
        .await
        .expect_err("the function refuses another table");

    assert!(
        refused.to_string().contains("runs only as the statement trigger of revoked_tokens"),
        "{refused}"
    );
    assert_eq!(app.db.count("SELECT count(*) FROM revocation_events").await, 0, "nothing was logged");
    conn.close().await.expect("close");
}

/// The service as the README's Postgres section sets it up: a role that
/// owns its database and is not a superuser migrates, serves, revokes,
/// follows and purges; a DBA role granted only what it needs revokes by
/// hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_runs_as_the_owner_of_its_database_not_a_superuser() {
    let db = TestDb::create_owned(Backend::Postgres).await;
    let app = TestApp::start(db.clone(), crate::helpers::random_secret(), |figment| figment).await;
    let superuser = db.count("SELECT count(*) FROM pg_roles WHERE rolname = current_user AND rolsuper").await;
    assert_eq!(superuser, 0, "the service's role is not a superuser");
    let other = app.another_instance().await;
    let tokens = app.signup("alice").await;
    let refreshed = app.refresh(&tokens.refresh).await;
    assert_eq!(refreshed.status, Status::Ok, "{:?}", refreshed.body);
    wait_until_trusted(&other).await;

    app.logout(&tokens.access).await;
    rejected_within(&other, &tokens.access, PROPAGATION_BOUND).await;

    let dba = Role::create("stranger").await;
    db.execute(&format!("GRANT SELECT, INSERT, DELETE ON revoked_tokens TO {}", dba.name)).await;
    let second = app.login_ok("alice").await;
    let mut conn = dba.connect(&db).await;
    conn.execute(
        format!(
            "INSERT INTO revoked_tokens (jti, expires_at) VALUES ('{}', '2099-01-01T00:00:00Z')",
            claim(&second.access, "jti")
        )
        .as_str(),
    )
    .await
    .expect("a DBA with INSERT on revoked_tokens revokes by hand");
    rejected_within(&other, &second.access, PROPAGATION_BOUND).await;
    conn.close().await.expect("close");

    let purged = jwt_blocklist::purge::purge_expired(app.store()).await.expect("purge");
    assert!(purged.is_some(), "the purge took its advisory lock");
    db.execute(&format!("REVOKE ALL ON revoked_tokens FROM {}", dba.name)).await;
    dba.drop().await;
}
