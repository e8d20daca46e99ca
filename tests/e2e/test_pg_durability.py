"""The tests of test_durability.py, run against PostgreSQL instead of SQLite
(tests/e2e/pgcluster.py: daemon_fixtures, keep_daemon_tests)."""

import pgcluster
from test_durability import *  # noqa: F401,F403  (the tests and their fixtures)

# About SQLite's own file lock and file (PostgreSQL's outages are
# test_postgres.py's, its state damaged by hand too).
SQLITE_ONLY = (
    "test_probe_answers_while_database_is_locked",
    "test_write_on_locked_database_is_not_acknowledged_unless_durable",
    "test_a_store_damaged_by_hand_is_refused_at_start_and_left_as_it_is",
)

daemon, make_daemon, shared_daemon = pgcluster.daemon_fixtures()
pgcluster.keep_daemon_tests(globals(), skip=SQLITE_ONLY)
