/*
 * clustermgmt web page script. The page works without it; with it:
 *  - the status table follows changes made elsewhere (CLI, API, another
 *    browser) through the events long poll, updating cells in place and
 *    never touching what the user is typing or has ticked; at most one
 *    answer with a change a second (PACE_MS); each answer carries only
 *    the nodes that changed since the state shown (?answer=changed);
 *  - the "Offline Nodes" form asks before taking the last online node out,
 *    and forms with data-confirm ask before removing things;
 *  - "Expires in" counts down.
 * The check state (under the status) and "Probed by" are not in the
 * events (they change without a new version): they are as of the page
 * load, except that the "down" mark hides while the node is offline.
 * Everything from the server is written with textContent, never as HTML.
 */
(function () {
	'use strict';

	/* PACE_MS: after an answer that carried a change, the next poll waits
	 * this long. A change is shown at once; a cluster that changes ten
	 * times a second then costs each open page one node list a second
	 * (the daemon sends it to every page), not ten. */
	var WAIT_S = 25, RETRY_MS = 2000, PACE_MS = 1000;
	var table = document.getElementById('nodes');
	var shown = document.getElementById('shown');

	function rows() {
		return table ? Array.prototype.slice.call(table.tBodies[0].rows) : [];
	}
	function checkbox(tr) {
		return tr.querySelector('input[name=off]');
	}
	function statusOf(tr) {
		return tr.className.replace(/.*row-(\w+).*/, '$1');
	}

	/* --- confirmations ------------------------------------------------- */

	function onlineAfter(form, submitter) {
		var n = 0;
		rows().forEach(function (tr) {
			var cb = checkbox(tr), st = statusOf(tr);
			if (st === 'removed') return;
			if (submitter && submitter.name === 'drain')
				n += st === 'online' && tr.dataset.node !== submitter.value ? 1 : 0;
			else
				n += cb && !cb.checked ? 1 : 0;
		});
		return n;
	}

	document.addEventListener('submit', function (e) {
		var form = e.target, ask = form.getAttribute('data-confirm');
		if (ask && !window.confirm(ask)) {
			e.preventDefault();
			return;
		}
		if (form.id !== 'offline-form' || form.querySelector('input[name=confirm]')) return;
		var online = rows().filter(function (tr) { return statusOf(tr) === 'online'; }).length;
		if (online > 0 && onlineAfter(form, e.submitter) === 0) {
			if (!window.confirm('This takes the last online node out of service: the load ' +
					'balancers will have nowhere to send requests. Continue?')) {
				e.preventDefault();
				return;
			}
			var yes = document.createElement('input');
			yes.type = 'hidden';
			yes.name = 'confirm';
			yes.value = 'yes';
			form.appendChild(yes);
		}
	});

	if (!table) return;

	/* --- formatting, as the server does it ------------------------------- */

	function when(iso) {
		return iso ? iso.replace('T', ' ').replace('Z', ' UTC') : '';
	}
	function duration(ms) {
		var s = Math.ceil(ms / 1000);
		function two(big, a, small, b) { return big + a + (small ? small + b : ''); }
		if (s < 60) return Math.max(s, 0) + 's';
		if (s < 3600) return two(Math.floor(s / 60), 'm', s % 60, 's');
		if (s < 86400) return two(Math.floor(s / 3600), 'h', Math.floor(s % 3600 / 60), 'm');
		return two(Math.floor(s / 86400), 'd', Math.floor(s % 86400 / 3600), 'h');
	}
	function tickExpiry() {
		var now = Date.now();
		rows().forEach(function (tr) {
			var td = tr.querySelector('.c-exp'), at = td ? Number(td.dataset.expires) : 0;
			if (at > 0) td.textContent = at > now ? duration(at - now) : 'due';
		});
	}

	/* --- the live table ------------------------------------------------- */

	var version = Number(table.dataset.version), cluster = table.dataset.cluster;
	/* The events' delta form (?answer=changed): the daemon's stamp of
	 * the state shown, from the page, then from each answer. */
	var stamp = table.dataset.stamp ? Number(table.dataset.stamp) : null;
	var live = document.getElementById('live');

	function say(text) {
		if (!live) return;
		live.textContent = text;
		live.hidden = !text;
	}

	/* The baseline of each checkbox ("was out") follows the server until
	 * the user touches it; "shown" tells the server those baselines. */
	rows().forEach(function (tr) {
		var cb = checkbox(tr);
		if (cb) tr.dataset.was = cb.defaultChecked ? '1' : '0';
	});
	table.addEventListener('change', function (e) {
		if (e.target.name === 'off') e.target.dataset.touched = '1';
	});
	function updateShown() {
		if (!shown) return;
		shown.value = rows().filter(function (tr) { return tr.dataset.was === '1'; })
			.map(function (tr) { return tr.dataset.node; }).join(' ');
	}

	function setCell(tr, cls, text) {
		var td = tr.querySelector('.' + cls);
		if (td && td.textContent !== text) td.textContent = text;
	}

	function updateRow(tr, n) {
		var before = tr.className, cb = checkbox(tr), out = n.status !== 'online';
		tr.className = 'row-' + n.status;
		var st = tr.querySelector('.c-status .st');
		st.className = 'st st-' + n.status;
		st.textContent = n.status;
		setCell(tr, 'c-reason', n.reason || '');
		setCell(tr, 'c-by', n.changed_by || '');
		var time = tr.querySelector('.c-since time');
		if (time) {
			time.dateTime = n.changed_at || '';
			time.textContent = when(n.changed_at);
		}
		var exp = tr.querySelector('.c-exp');
		exp.dataset.expires = n.expires_at ? Date.parse(n.expires_at) : 0;
		if (!n.expires_at) exp.textContent = '';
		/* The check itself is not in the events; offline outranks it. */
		var down = tr.querySelector('.c-status .st-down');
		if (down) down.hidden = n.status === 'offline';
		var drain = tr.querySelector('button[name=drain]');
		if (drain) drain.hidden = n.status === 'drain';
		if (cb && !cb.dataset.touched) {
			cb.checked = out;
			tr.dataset.was = out ? '1' : '0';
		}
		if (before !== tr.className) {
			tr.classList.add('changed');
			setTimeout(function () { tr.classList.remove('changed'); }, 2000);
		}
	}

	function newRow(n) {
		var tr = document.createElement('tr'), edit = table.dataset.edit === '1';
		tr.dataset.node = n.name;
		var cells = edit ? ['c-off'] : [];
		cells.push('c-name', 'c-status', 'c-reason', 'c-by', 'c-since', 'c-exp', 'c-probes');
		if (edit) cells.push('c-act');
		cells.forEach(function (cls) {
			var td = document.createElement(cls === 'c-name' ? 'th' : 'td');
			td.className = cls;
			tr.appendChild(td);
		});
		tr.querySelector('.c-name').textContent = n.name;
		tr.querySelector('.c-status').appendChild(document.createElement('span'))
			.className = 'st';
		tr.querySelector('.c-since').appendChild(document.createElement('time'));
		table.tBodies[0].appendChild(tr);
		return tr;
	}

	/* Only the nodes that changed since the last answer's stamp: each
	 * updates its row; the others stay as they are. */
	function applyDelta(doc) {
		var byName = {};
		doc.nodes.forEach(function (n) { byName[n.name] = n; });
		rows().forEach(function (tr) {
			var n = byName[tr.dataset.node];
			if (n) updateRow(tr, n);
		});
		var online = 0, total = 0;
		rows().forEach(function (tr) {
			var st = statusOf(tr);
			if (st === 'removed') return;
			total++;
			online += st === 'online' ? 1 : 0;
		});
		showCount(online, total);
		updateShown();
		tickExpiry();
		return false;
	}

	function showCount(online, total) {
		var count = document.querySelector('#summary .count');
		if (count) {
			count.textContent = online + ' of ' + total + ' nodes online';
			count.className = 'count count-' + (total === 0 ? 'none' :
				online === total ? 'online' : online === 0 ? 'offline' : 'partial');
		}
	}

	function apply(doc) {
		var byName = {}, added = false, online = 0;
		if (doc.whole === false) return applyDelta(doc);
		doc.nodes.forEach(function (n) { byName[n.name] = n; });
		rows().forEach(function (tr) {
			var n = byName[tr.dataset.node];
			if (!n) {
				tr.className = 'row-removed';
				var st = tr.querySelector('.c-status .st');
				st.className = 'st st-removed';
				st.textContent = 'removed';
				var cb = checkbox(tr);
				if (cb) cb.disabled = true;
				tr.dataset.was = '0';
				return;
			}
			updateRow(tr, n);
			delete byName[tr.dataset.node];
		});
		Object.keys(byName).forEach(function (name) {
			updateRow(newRow(byName[name]), byName[name]);
			added = true;
		});
		doc.nodes.forEach(function (n) { online += n.status === 'online' ? 1 : 0; });
		showCount(online, doc.nodes.length);
		updateShown();
		tickExpiry();
		return added;
	}

	function poll() {
		var url = '/v1/clusters/' + encodeURIComponent(cluster) + '/events?after=' + version +
			'&wait=' + WAIT_S + '&answer=changed' + (stamp !== null ? '&since=' + stamp : '');
		fetch(url, {credentials: 'same-origin', cache: 'no-store',
			headers: {'Accept': 'application/json'}})
			.then(function (r) {
				if (r.status === 401 || r.status === 403 || r.status === 404)
					throw {stop: r.status};
				if (!r.ok) throw {};
				return r.json();
			})
			.then(function (doc) {
				var added = apply(doc);
				version = doc.version;
				stamp = doc.stamp;
				say(added ? 'Nodes were added elsewhere; reload the page to change them.' : '');
				setTimeout(poll, doc.changed ? PACE_MS : 0);
			})
			.catch(function (err) {
				if (err && err.stop) {
					say(err.stop === 404 ? 'This cluster was removed.' :
						'Live updates stopped: sign in again to follow changes.');
					return;
				}
				say('Live updates interrupted; retrying…');
				setTimeout(poll, RETRY_MS);
			});
	}

	setInterval(tickExpiry, 1000);
	poll();
})();

/*
 * The rollouts card: the rollouts in progress on this cluster and the
 * last ones that ended, from GET /v1/clusters/{c}/rollouts every
 * ROLLOUTS_POLL_MS (a rollout's heartbeat is no change of the cluster,
 * so the events long poll does not carry it). Who started it, its
 * nodes with their verdicts and the current one marked, its phase, how
 * and why it ended, and "client gone" when its client has not been heard
 * from. Every string comes from the registering client: written with
 * textContent only.
 */
(function () {
	'use strict';

	var ROLLOUTS_POLL_MS = 3000, ENDED_SHOWN = 3;
	var card = document.getElementById('rollouts');
	if (!card || !window.fetch) return;
	var list = card.querySelector('.rollouts-list'), note = card.querySelector('.rollouts-note');
	var cluster = card.dataset.cluster;

	function el(tag, cls, text) {
		var e = document.createElement(tag);
		if (cls) e.className = cls;
		if (text !== undefined && text !== null) e.textContent = String(text);
		return e;
	}
	function when(iso) {
		return iso ? iso.replace('T', ' ').replace('Z', ' UTC') : '';
	}
	function seconds(ms) {
		return Math.max(0, Math.round(ms / 1000)) + ' s';
	}
	function row(dl, term, cls, value) {
		dl.appendChild(el('dt', null, term));
		var dd = dl.appendChild(el('dd', cls));
		if (value instanceof Node) dd.appendChild(value);
		else dd.textContent = value === null || value === undefined ? '' : String(value);
		return dd;
	}

	function nodesOf(x) {
		var ul = el('ul', 'r-nodes');
		(x.nodes || []).forEach(function (name) {
			var li = ul.appendChild(el('li', 'r-node', name));
			li.dataset.node = name;
			var v = x.verdicts && x.verdicts[name];
			if (typeof v === 'string') {
				li.appendChild(document.createTextNode(' '));
				li.appendChild(el('span', 'verdict verdict-' +
					(/^(pass|fail|inconclusive)$/.test(v) ? v : 'other'), v));
			}
			if (x.state === 'running' || x.client_gone) {
				if (name === x.current) {
					li.classList.add('r-current');
					li.appendChild(el('span', 'r-here', ' \u2190 now'));
				}
			}
		});
		return ul;
	}

	function rolloutOf(x) {
		var state = x.client_gone ? 'client gone' : x.state;
		var art = el('article', 'rollout rollout-' + String(state).replace(/[^a-z]+/g, '-'));
		art.dataset.id = x.id;
		var h = art.appendChild(el('h3', null, 'Rollout ' + x.id + ' '));
		h.appendChild(el('span', 'r-state', state));
		var dl = art.appendChild(el('dl', 'r-facts'));
		row(dl, 'Started by', 'r-by', x.started_by + (x.from ? ' from ' + x.from : '') +
			', ' + when(x.started_at));
		if (x.command) row(dl, 'Command', 'r-command', el('code', null, x.command));
		row(dl, 'Phase', 'r-phase', x.phase || '');
		row(dl, 'Nodes', null, nodesOf(x));
		if (x.message) row(dl, x.state === 'running' ? 'Note' : 'Why it stopped', 'r-message',
			x.message);
		if (x.client_gone)
			row(dl, 'Client', 'r-gone', 'gone: no heartbeat for ' +
				seconds(x.heartbeat_age_ms) + ' (it may be dead or cut off). Its nodes ' +
				'come back when their TTL expires; `rollout --force` starts another.');
		else if (x.state === 'running')
			row(dl, 'Heartbeat', 'r-beat', seconds(x.heartbeat_age_ms) + ' ago');
		else
			row(dl, 'Ended', 'r-beat', when(x.heartbeat_at));
		return art;
	}

	function show(doc) {
		var running = [], ended = [];
		(doc.rollouts || []).forEach(function (x) {
			(x.state === 'running' || x.client_gone ? running : ended).push(x);
		});
		ended = ended.slice(0, ENDED_SHOWN);
		while (list.firstChild) list.removeChild(list.firstChild);
		running.concat(ended).forEach(function (x) { list.appendChild(rolloutOf(x)); });
		note.hidden = !doc.store_unreachable;
		note.textContent = doc.store_unreachable ? 'The store does not answer: this is ' +
			'the list as of ' + (when(doc.as_of) || 'this daemon\u2019s start') +
			'; heartbeats sent to other daemons are not seen.' : '';
		card.hidden = running.length + ended.length === 0 && !doc.store_unreachable;
	}

	function poll() {
		fetch('/v1/clusters/' + encodeURIComponent(cluster) + '/rollouts',
			{credentials: 'same-origin', cache: 'no-store',
				headers: {'Accept': 'application/json'}})
			.then(function (r) {
				if (r.status === 401 || r.status === 403 || r.status === 404)
					throw {stop: true};
				if (!r.ok) throw {};
				return r.json();
			})
			.then(function (doc) {
				show(doc);
				setTimeout(poll, ROLLOUTS_POLL_MS);
			})
			.catch(function (err) {
				if (err && err.stop) return;
				setTimeout(poll, ROLLOUTS_POLL_MS);
			});
	}

	poll();
})();
