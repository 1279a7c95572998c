//! The log: the built binary, serving on a port the system picks, with
//! `log_format = json` at the default level and at `debug`. Every line is a
//! JSON object; each request has its line (request id, method, route
//! template, status, latency, user id); and no token, password, secret or
//! CSRF value appears anywhere in it, whatever the traffic.

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::backend_tests;
use crate::helpers::{
    http, http_text, random_secret, serve_binary as serve, stop, wait_until, Backend, TcpProxy, TestDb,
    PROPAGATION_BOUND,
};

const PASSWORD: &str = "a password that must never be logged";
/// A password sent as a JSON number (the wrong type: 422).
const NUMBER_PASSWORD: u64 = 73_194_620_558_301;

fn set_cookie<'a>(head: &'a str, name: &str) -> &'a str {
    head.lines()
        .filter_map(|line| {
            line.split_once(": ").filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie")).map(|(_, v)| v)
        })
        .find_map(|value| {
            value.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap_or(""))
        })
        .expect("the cookie")
}

async fn nothing_secret_reaches_the_log(backend: Backend) {
    for level in ["normal", "debug"] {
        let db = TestDb::create(backend).await;
        let secret = random_secret();
        let (mut child, port, lines) = serve(&db, &secret, level, &[]);

        let credentials = json!({ "username": "alice", "password": PASSWORD });
        assert_eq!(http(port, "POST", "/auth/register", &[], Some(&credentials)).await.0, 201);
        let (_, _, bearer) = http(port, "POST", "/auth/login", &[], Some(&credentials)).await;
        let (access, refresh) =
            (bearer["access_token"].as_str().unwrap(), bearer["refresh_token"].as_str().unwrap());
        let authorization = crate::helpers::bearer(access);
        let (status, head, _) = http(
            port,
            "GET",
            "/protected",
            &[("Authorization", &authorization), ("X-Request-Id", "trace-me-1")],
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert!(head.to_ascii_lowercase().contains("x-request-id: trace-me-1"), "{head}");
        http(port, "POST", "/auth/refresh", &[], Some(&json!({ "refresh_token": refresh }))).await;
        http(port, "POST", "/auth/refresh", &[], Some(&json!({ "refresh_token": refresh }))).await;
        let cookie_login = json!({ "username": "alice", "password": PASSWORD, "transport": "cookie" });
        let (_, head, cookie_body) = http(port, "POST", "/auth/login", &[], Some(&cookie_login)).await;
        let csrf = cookie_body["csrf_token"].as_str().unwrap().to_owned();
        let cookie_access = set_cookie(&head, "jbl_access").to_owned();
        let cookies = format!("jbl_access={cookie_access}; jbl_csrf={csrf}");
        http(port, "POST", "/auth/logout", &[("Cookie", &cookies), ("X-CSRF-Token", &csrf)], None).await;
        http(
            port,
            "POST",
            "/auth/login",
            &[],
            Some(&json!({ "username": "alice", "password": "wrong: also secret" })),
        )
        .await;
        http(port, "GET", "/protected", &[("Authorization", "Bearer not.a.token")], None).await;
        // Values of the wrong type: serde's message quotes them, and Rocket
        // logs a failed data guard's error.
        for (path, body) in [
            ("/auth/login", json!({ "username": "alice", "password": NUMBER_PASSWORD })),
            ("/auth/register", json!({ "username": "carol", "password": NUMBER_PASSWORD })),
            ("/auth/login", json!({ "username": "alice", "password": ["an array of secrets"] })),
            ("/auth/login", json!({ "username": "alice", "password": "x", "transport": "secret-transport" })),
        ] {
            let (status, _, answer) = http(port, "POST", path, &[], Some(&body)).await;
            assert_eq!(status, 422, "{answer}");
            let described = answer["description"].as_str().unwrap_or_default();
            assert!(described.starts_with("Invalid field `"), "names the field: {described}");
            for value in [&NUMBER_PASSWORD.to_string(), "an array of secrets", "secret-transport"] {
                assert!(!described.contains(value), "the answer quotes a value: {described}");
            }
        }
        // The pages carry nosniff once (Rocket's Shield sets it; a route
        // that set it too made Shield warn twice per page view).
        for page in ["/", "/docs"] {
            let (status, head, _) = http(port, "GET", page, &[], None).await;
            assert_eq!(status, 200);
            let nosniff = head.to_ascii_lowercase().matches("x-content-type-options: nosniff").count();
            assert_eq!(nosniff, 1, "{page}: {head}");
        }

        // A resource server: its secret, right and wrong, in Basic.
        let added = crate::cli::cli(&db, &secret, &["clients", "add", "billing"]).await;
        let client_secret = added.stdout.lines().find_map(|line| line.strip_prefix("client_secret: "));
        let client_secret = client_secret.expect("clients add prints the secret").to_owned();
        let basic = crate::helpers::basic("billing", &client_secret);
        let wrong = crate::helpers::basic("billing", "a wrong client secret");
        let form = format!("token={access}");
        wait_until("the service knows the client", PROPAGATION_BOUND, || async {
            introspect(port, &basic, &form).await == 200
        })
        .await;
        assert_eq!(introspect(port, &wrong, &form).await, 401);
        let metrics = metrics_text(port).await;
        assert!(metrics.contains("jwt_blocklist_introspections_total"), "{metrics}");

        stop(&mut child);
        let log: Vec<String> = lines.iter().collect();
        let text = log.join("\n");
        let private = signing_key_secrets(&db, &secret).await;
        for (what, value) in private.iter().map(|(what, value)| (*what, value.as_str())).chain([
            ("a client secret", client_secret.as_str()),
            ("a client's Basic credentials", basic.trim_start_matches("Basic ")),
            ("wrong Basic credentials", wrong.trim_start_matches("Basic ")),
        ]) {
            assert!(!text.contains(value), "{what} is in the {level} log");
            assert!(!metrics.contains(value), "{what} is in /metrics");
        }
        for (what, value) in [
            ("the password", PASSWORD),
            ("a wrong password", "wrong: also secret"),
            ("the access token", access),
            ("the refresh token", refresh),
            ("the cookie's access token", &cookie_access),
            ("the CSRF token", &csrf),
            ("the signing secret", &secret),
            ("a token's signature", access.rsplit('.').next().unwrap()),
            ("a password sent as a number", &NUMBER_PASSWORD.to_string()),
            ("a password sent as an array", "an array of secrets"),
            ("a value of the wrong kind", "secret-transport"),
        ] {
            assert!(!text.contains(value), "{what} is in the {level} log");
        }
        for line in &log {
            serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        }
        let requests: Vec<Value> = log
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["target"] == "jwt_blocklist::request")
            .collect();
        let traced =
            requests.iter().find(|line| line["request_id"] == "trace-me-1").expect("the request's line");
        assert_eq!(traced["method"], "GET");
        assert_eq!(traced["route"], "/protected");
        assert_eq!(traced["status"], 200);
        assert!(traced["latency_ms"].as_f64().is_some());
        assert_eq!(traced["user_id"], bearer_user(access));
        assert!(requests.iter().any(|line| line["route"] == "/auth/login" && line["status"] == 401));
        assert!(log.iter().any(|line| line.contains("database migrated")), "lifecycle: migration");
        // Rocket's own records of each request (the route matched, the
        // outcome) at debug only; below it, this service's line says it all.
        let rocket_requests = log
            .iter()
            .filter(|line| {
                line.contains(r#""log.target":"rocket::server"#) && line.contains(r#""level":"INFO""#)
            })
            .count();
        assert_eq!(
            rocket_requests > 0,
            level == "debug",
            "Rocket's request records at {level}: {rocket_requests}"
        );
        let shield: Vec<&String> = log
            .iter()
            .filter(|line| line.contains("rocket::shield") && line.contains(r#""level":"WARN""#))
            .collect();
        assert!(shield.is_empty(), "a page view makes Shield warn: {shield:#?}");
    }
}

/// `POST /oauth/introspect` over HTTP; returns the status.
async fn introspect(port: u16, basic: &str, form: &str) -> u16 {
    let body = Some(("application/x-www-form-urlencoded", form));
    http_text(port, "POST", "/oauth/introspect", &[("Authorization", basic)], body).await.0
}

/// The body of `GET /metrics`.
async fn metrics_text(port: u16) -> String {
    http_text(port, "GET", "/metrics", &[], None).await.2
}

/// Every form in which the signing key's private part could leak: its
/// sealed bytes and its private scalar, in hex and base64(url).
async fn signing_key_secrets(db: &TestDb, secret: &str) -> Vec<(&'static str, String)> {
    use aws_lc_rs::encoding::AsBigEndian;
    use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    use base64::Engine;
    use jwt_blocklist::auth::keys::material::SealingKey;

    let (kid, sealed): (String, Vec<u8>) = match db.backend {
        Backend::Postgres => {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url()).await.unwrap();
            sqlx::query_as("SELECT kid, sealed_private FROM signing_keys").fetch_one(&mut conn).await.unwrap()
        }
        Backend::Sqlite => {
            let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db.url()).await.unwrap();
            sqlx::query_as("SELECT kid, sealed_private FROM signing_keys").fetch_one(&mut conn).await.unwrap()
        }
    };
    let secret = serde_json::from_value(json!(secret)).expect("a secret");
    let pkcs8 = SealingKey::derive(&secret).open(&kid, &sealed).expect("the secret opens the key");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8).expect("a P-256 key");
    let scalar = pair.private_key().as_be_bytes().expect("its scalar").as_ref().to_vec();
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    vec![
        ("the private scalar (base64url, as a JWK's d)", URL_SAFE_NO_PAD.encode(&scalar)),
        ("the private scalar (base64)", STANDARD_NO_PAD.encode(&scalar)),
        ("the private scalar (hex)", hex(&scalar)),
        ("the PKCS#8 key (base64)", STANDARD_NO_PAD.encode(&pkcs8)),
        ("the sealed key (hex)", hex(&sealed)),
        ("the sealed key (base64)", STANDARD_NO_PAD.encode(&sealed)),
    ]
}

/// With no log level configured the binary writes its lifecycle events and
/// one line per request (Rocket's release default, `critical`, would write
/// neither; the unit test `every_build_logs_at_normal_unless_configured`
/// covers release builds, which this debug binary is not).
async fn with_no_log_level_configured_requests_and_lifecycle_are_logged(backend: Backend) {
    let db = TestDb::create(backend).await;
    let (mut child, port, lines) = serve(&db, &random_secret(), "", &[]);

    let (status, _, _) = http(port, "GET", "/health", &[("X-Request-Id", "unconfigured-1")], None).await;

    assert_eq!(status, 200);
    stop(&mut child);
    let log: Vec<Value> = lines.iter().filter_map(|line| serde_json::from_str(&line).ok()).collect();
    assert!(log.iter().any(|line| line["request_id"] == "unconfigured-1" && line["route"] == "/health"));
    let text = |line: &Value| line.to_string();
    assert!(log.iter().any(|line| text(line).contains("database migrated")), "lifecycle: migration");
}

fn bearer_user(token: &str) -> String {
    crate::helpers::claim(token, "sub")
}

/// A login storm that fills the hashing queue is answered 503 per request,
/// but the warning it causes is written once a second, not once per request
/// (a flood of requests must not become a flood of log lines).
async fn a_shed_storm_writes_a_line_a_second_not_one_per_request(backend: Backend) {
    let db = TestDb::create(backend).await;
    let (mut child, port, lines) = serve(
        &db,
        &random_secret(),
        "critical",
        &[("ROCKET_HASH_QUEUE", "1"), ("ROCKET_LOGIN_MAX_FAILURES", "0")],
    );
    let guess = json!({ "username": "nobody", "password": "a wrong guess" });
    let started = std::time::Instant::now();
    let answers =
        futures::future::join_all((0..40).map(|_| http(port, "POST", "/auth/login", &[], Some(&guess))))
            .await;
    let elapsed = started.elapsed();
    let shed = answers.iter().filter(|(status, _, _)| *status == 503).count();
    assert!(shed >= 2, "40 logins at once with room for one hash: {shed} shed");
    assert!(answers.iter().all(|(status, _, _)| [401, 503].contains(status)));

    stop(&mut child);
    let warnings: Vec<Value> = lines
        .iter()
        .filter(|line| line.contains("hashing queue full"))
        .map(|line| serde_json::from_str(&line).expect("a JSON line"))
        .collect();
    assert!(!warnings.is_empty(), "the first shed request is logged");
    assert!(warnings
        .iter()
        .all(|line| line["level"] == "WARN" && line["target"] == "jwt_blocklist::auth::password"));
    let warnings = warnings.len();
    assert!(
        warnings as u64 <= 1 + elapsed.as_secs(),
        "{warnings} lines for {shed} shed requests in {elapsed:?}"
    );
}

/// Bad tokens and broken connections make Rocket warn about each one (the
/// guard that failed, the catcher that answered, the connection that was
/// not HTTP): ten such lines a second pass, not two per request.
async fn a_flood_of_bad_requests_writes_ten_of_rockets_lines_a_second(backend: Backend) {
    let db = TestDb::create(backend).await;
    let (mut child, port, lines) = serve(&db, &random_secret(), "critical", &[]);
    let started = std::time::Instant::now();
    for _ in 0..100 {
        let (status, _, _) =
            http(port, "GET", "/protected", &[("Authorization", "Bearer not.a.token")], None).await;
        assert_eq!(status, 401);
    }
    for _ in 0..50 {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connects");
        stream.write_all(b"NOT HTTP AT ALL\r\n\r\n").await.expect("sends");
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
    }
    let elapsed = started.elapsed();
    stop(&mut child);
    let rocket: Vec<Value> = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
        .filter(|line| {
            let target = line["target"].as_str().unwrap_or_default();
            target == "rocket::server" || target.ends_with("::_")
        })
        .collect();
    assert!(!rocket.is_empty(), "the first of them are still written");
    assert!(
        rocket.len() as u64 <= 10 * (1 + elapsed.as_secs()),
        "{} of Rocket's lines for 150 bad requests in {elapsed:?}",
        rocket.len()
    );
}

/// Standard output that nobody reads (a stalled log shipper): the pipe
/// fills, then the writer's buffer; requests go on being answered at once,
/// and the lines that could not wait are dropped and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_log_sink_drops_and_counts_lines_and_never_blocks_a_request() {
    let db = TestDb::create(Backend::Sqlite).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its port")
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_jwt-blocklist"))
        .env("DATABASE_URL", db.url())
        .env("ROCKET_JWT_SECRET", random_secret())
        .env("ROCKET_DATA_DIR", db.folder())
        .env("ROCKET_PORT", port.to_string())
        .env("ROCKET_LOG_FORMAT", "json")
        .env("ROCKET_LOG_LEVEL", "normal")
        .env("ROCKET_PURGE_INTERVAL", "0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the binary starts");
    let _unread = child.stdout.take();
    let client = reqwest::Client::new();
    let health = format!("http://127.0.0.1:{port}/health");
    wait_until("the service answers", std::time::Duration::from_secs(30), || async {
        client.get(&health).send().await.is_ok_and(|answer| answer.status() == 200)
    })
    .await;

    // More lines than the pipe and the writer's buffer hold, from 8 clients.
    let requests = crate::helpers::LOG_BUFFERED_LINES + 4000;
    let clients = 8;
    let answered = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        futures::future::join_all((0..clients).map(|_| {
            let (client, health) = (client.clone(), health.clone());
            async move {
                let mut ok = 0;
                for _ in 0..requests / clients {
                    ok += usize::from(client.get(&health).send().await.is_ok_and(|a| a.status() == 200));
                }
                ok
            }
        })),
    )
    .await
    .expect("no request waits for the log");

    assert_eq!(answered.iter().sum::<usize>(), requests / clients * clients);
    let metrics = client.get(format!("http://127.0.0.1:{port}/metrics")).send().await.expect("metrics");
    let metrics = metrics.text().await.expect("text");
    let dropped: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("jwt_blocklist_log_lines_dropped_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("the dropped lines are counted: {metrics}"));
    assert!(dropped > 0, "lines were dropped rather than waited for");
    child.kill().expect("stops");
    child.wait().expect("stopped");
}

/// When memory stops answering for a moment (the follower could not confirm
/// it within the bound: here its database connection stalls silently for
/// longer, as a poll of a million rows under load can take), the log says
/// why, in one line, once memory is current again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_that_fell_behind_the_database_says_why_in_one_line() {
    let db = TestDb::create(Backend::Postgres).await;
    let proxy = TcpProxy::start(TestDb::postgres_address()).await;
    let through_proxy = db.url_through(proxy.port);
    let (mut child, port, lines) = serve(&db, &random_secret(), "", &[("DATABASE_URL", &through_proxy)]);
    let memory = |field: &'static str| async move {
        let (_, _, health) = http(port, "GET", "/health", &[], None).await;
        health["revocation_cache"][field].clone()
    };
    wait_until("memory answers", PROPAGATION_BOUND * 10, || async { memory("mode").await == "live" }).await;

    proxy.freeze();
    let staleness = || async {
        let (_, _, text) = http_text(port, "GET", "/metrics", &[], None).await;
        text.lines()
            .find_map(|line| line.strip_prefix("jwt_blocklist_revocation_follower_staleness_seconds "))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    wait_until("memory is past the bound", PROPAGATION_BOUND * 10, || async { staleness().await > 1.2 })
        .await;
    proxy.thaw();
    wait_until("memory answers again", PROPAGATION_BOUND * 10, || async { staleness().await < 0.9 }).await;

    stop(&mut child);
    let why: Vec<String> =
        lines.iter().filter(|line| line.contains("behind the database until this poll")).collect();
    assert_eq!(why.len(), 1, "one line: {why:?}");
    let line: Value = serde_json::from_str(&why[0]).expect("a JSON line");
    assert_eq!(line["level"], "WARN", "{line}");
    assert!(why[0].contains("checks asked the database meanwhile"), "{line}");
}

backend_tests!(
    with_no_log_level_configured_requests_and_lifecycle_are_logged,
    nothing_secret_reaches_the_log,
    a_shed_storm_writes_a_line_a_second_not_one_per_request,
    a_flood_of_bad_requests_writes_ten_of_rockets_lines_a_second
);
