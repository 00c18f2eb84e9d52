"""The manager's web pages, as Tornado templates (autoescaped: every value a job, a worker
or Redis gives is text on the page, never markup). Each page is a frame around a fragment
that its script fetches again every second; actions are forms posted with Tornado's XSRF
field."""

STYLE = """
body{font:14px system-ui,sans-serif;margin:0;background:#f6f6f4;color:#222}
nav{background:#24292e;padding:8px 16px}nav a{color:#fff;margin-right:16px;text-decoration:none}
main{padding:16px}table{border-collapse:collapse;background:#fff;width:100%}
td,th{border-bottom:1px solid #ddd;padding:6px 8px;text-align:left;vertical-align:middle}
.bar{width:140px;height:10px;background:#ddd;display:inline-block}.bar div{height:10px;background:#2a7}
form{display:inline;margin:0}button{margin-right:4px}.bad{color:#b00}.ok{color:#070}
img.thumb{max-width:96px;max-height:72px;image-rendering:pixelated}img.live{width:min(100%,640px);image-rendering:pixelated}.notice{font-family:monospace;white-space:pre-wrap}
"""

TEMPLATES = {
    "frame.html": """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>farm: {{ title }}</title><style>{% raw style %}</style></head>
<body><nav><a href="/">Jobs</a><a href="/workers">Workers</a></nav>
<main><h1>{{ title }}</h1><div id="fragment" data-source="{{ source }}">{% raw fragment %}</div></main>
<script>
const box = document.getElementById('fragment');
async function refresh() {
  if (document.activeElement && box.contains(document.activeElement) && document.activeElement.tagName === 'INPUT') return;
  const reply = await fetch(box.dataset.source, {credentials: 'same-origin'});
  if (reply.ok) box.innerHTML = await reply.text();
}
setInterval(() => refresh().catch(() => {}), 1000);
</script></body></html>""",
    "login.html": """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>farm: sign in</title><style>{% raw style %}</style></head>
<body><main><h1>farm manager</h1><p>This page needs the manager's token (FARM_MANAGER_TOKEN, or the one
<code>farm manager</code> printed).</p>
<form method="post" action="/login">{% module xsrf_form_html() %}
<input type="hidden" name="next" value="{{ next }}"><input type="password" name="token" autofocus>
<button type="submit">Sign in</button></form></main></body></html>""",
    "actions.html": """{% if job['state'] in ('queued', 'running') %}
<form method="post" action="/jobs/{{ job['id'] }}/{{ 'resume' if job['paused'] else 'pause' }}">{% module xsrf_form_html() %}
<input type="hidden" name="back" value="{{ back }}"><button class="{{ 'resume' if job['paused'] else 'pause' }}">{{ 'Resume' if job['paused'] else 'Pause' }}</button></form>
<form method="post" action="/jobs/{{ job['id'] }}/cancel">{% module xsrf_form_html() %}
<input type="hidden" name="back" value="{{ back }}"><button class="cancel">Cancel</button></form>
{% end %}{% if job['state'] in ('failed', 'cancelled') %}
<form method="post" action="/jobs/{{ job['id'] }}/retry">{% module xsrf_form_html() %}
<input type="hidden" name="back" value="{{ back }}"><button class="retry">Retry</button></form>
{% end %}
<form method="post" action="/jobs/{{ job['id'] }}/priority">{% module xsrf_form_html() %}
<input type="hidden" name="back" value="{{ back }}"><input name="priority" type="number" min="0" max="100" size="3"
 value="{{ job['priority'] }}"><button class="priority">Set</button></form>""",
    "jobs.html": """<table id="jobs"><tr><th></th><th>Name</th><th>Owner</th><th>State</th><th>Priority</th>
<th>Progress</th><th>Frames</th><th>ETA</th><th>Actions</th></tr>
{% for job in jobs %}<tr class="job" data-job="{{ job['id'] }}">
<td>{% if job['thumbnail'] %}<img class="thumb" alt="" src="/jobs/{{ job['id'] }}/thumbnail.png?v={{ job['last_frame'] }}">{% end %}</td>
<td><a class="name" href="/jobs/{{ job['id'] }}">{{ job['name'] }}</a></td><td>{{ job['owner'] }}</td>
<td class="state">{{ job['state'] }}{{ ' (paused)' if job['paused'] and job['state'] in ('queued', 'running') else '' }}</td>
<td>{{ job['priority'] }}</td>
<td><span class="bar"><div style="width:{{ '%.1f' % (100 * job['progress']) }}%"></div></span> {{ '%.0f' % (100 * job['progress']) }}%</td>
<td>{{ len(job['frames_done']) }}/{{ job['frames_total'] }}</td><td>{{ eta(job) }}</td>
<td>{% include "actions.html" %}</td></tr>{% end %}
</table>{% if not jobs %}<p>No jobs yet: <code>submit SCENE -o OUT --detach --broker URL</code>.</p>{% end %}""",
    "job.html": """<p>{{ job['owner'] }} &middot; state <b class="state">{{ job['state'] }}{{ ' (paused)' if job['paused'] and job['state'] in ('queued', 'running') else '' }}</b>
&middot; priority {{ job['priority'] }} &middot; {{ len(job['frames_done']) }}/{{ job['frames_total'] }} frames
&middot; {{ '%.0f' % (100 * job['progress']) }}% &middot; ETA {{ eta(job) }}</p>
<p>{% include "actions.html" %}</p>
{% if job['error'] %}<p class="bad">{{ job['error'] }}</p>{% end %}
{% if live %}<h2>Rendering now</h2><p><img class="live" alt="the frame in flight" src="/jobs/{{ job['id'] }}/live.png?t={{ now }}"></p>
<ul>{% for bucket in rendering %}<li>bucket {{ bucket[0] }} on {{ bucket[1] }}</li>{% end %}</ul>{% end %}
<h2>Files</h2><ul id="files">{% for name, size in files %}<li><a href="/jobs/{{ job['id'] }}/files/{{ url_escape(name) }}">{{ name }}</a> ({{ size }} bytes)</li>{% end %}</ul>
<h2>Frames written</h2><p>{{ ', '.join(str(n) for n in job['frames_done']) or 'none yet' }}</p>
<h2>Notices</h2>{% for line in job['notices'] %}<div class="notice">{{ line }}</div>{% end %}""",
    "workers.html": """<table id="workers"><tr><th>Worker</th><th>Machine</th><th>Device</th><th>Kernel</th>
<th>Tags</th><th>Now</th><th>Health</th></tr>
{% for worker in workers %}<tr class="worker"><td>{{ worker['hostname'] }}</td><td>{{ worker['host'] }}</td>
<td>{{ worker['device'] }}</td><td>{{ worker['kernel'] }}</td><td>{{ worker['tags'] }}</td><td>{{ worker['now'] }}</td>
<td class="{{ 'bad' if worker['bad'] else 'ok' }}">{{ ('bad: ' + worker['bad']) if worker['bad'] else 'healthy' }}</td></tr>{% end %}
</table>{% if not workers %}<p>No worker is alive: start one with <code>celery -A farm worker</code>.</p>{% end %}""",
}
