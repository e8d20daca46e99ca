"""The tests of test_lbs.py, run against PostgreSQL instead of SQLite
(tests/e2e/pgcluster.py: daemon_fixtures, keep_daemon_tests): the named
load balancers' rows, added, changed and removed, in the shared store."""

import pgcluster
from test_lbs import *  # noqa: F401,F403  (the tests and their fixtures)

daemon, make_daemon, shared_daemon = pgcluster.daemon_fixtures()
pgcluster.keep_daemon_tests(globals(), skip=())
