"""The tests of test_durability.py, run against PostgreSQL instead of SQLite
(tests/e2e/pgcluster.py: daemon_fixtures, keep_daemon_tests)."""

import pgcluster
from test_durability import *  # noqa: F401,F403  (the tests and their fixtures)

# About SQLite's own file lock; PostgreSQL's outages are test_postgres.py's.
SQLITE_ONLY = (
    "test_probe_answers_while_database_is_locked",
    "test_write_on_locked_database_is_not_acknowledged_unless_durable",
)

daemon, make_daemon, shared_daemon = pgcluster.daemon_fixtures()
pgcluster.keep_daemon_tests(globals(), skip=SQLITE_ONLY)
