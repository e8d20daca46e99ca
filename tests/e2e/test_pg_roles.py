"""The tests of test_roles.py, run against PostgreSQL instead of SQLite
(tests/e2e/pgcluster.py: daemon_fixtures, keep_daemon_tests)."""

import pgcluster
from test_roles import *  # noqa: F401,F403  (the tests and their fixtures)

daemon, make_daemon, shared_daemon = pgcluster.daemon_fixtures()
pgcluster.keep_daemon_tests(globals(), skip=())
