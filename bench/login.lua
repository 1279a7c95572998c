-- wrk script: logins with the benchmark user's credentials.
wrk.method = "POST"
wrk.body = '{"username":"benchuser","password":"bench password 123"}'
wrk.headers["Content-Type"] = "application/json"
