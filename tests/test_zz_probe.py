from workflow_service.auth.models import Permission
from tests.test_schemathesis import target  # noqa: F401

def test_probe(target):
    target.seed()
    s = target.seeds
    c = target.client(Permission.PIPELINES_CLIENT)
    w = target.client(Permission.PIPELINES_WORKER)
    a = target.client(Permission.ADMIN)
    H = {"Content-Type": "application/json"}
    p, r = s["pipeline_uuid"], s["run_uuid"]
    tries = [
        (c, "POST", "/v1/pipelines", '{"name": "a\\ud800b", "kind": "gridlabd"}'),
        (c, "POST", "/v1/pipelines", '{"name": "ok", "kind": "gridlabd", "description": "\\udfff"}'),
        (c, "POST", "/v1/workflows", '{"name": "a\\ud800"}'),
        (c, "POST", f"/v1/pipelines/{p}/runs", '{"defines": {"A": "\\ud800"}}'),
        (c, "POST", f"/v1/pipelines/{p}/runs", '{"inputs": [{"name": "a\\ud800.csv", "url": "https://example.com/x"}]}'),
        (c, "POST", f"/v1/pipelines/{p}/runs", '{"callback_url": "https://example.com/\\ud800"}'),
        (w, "PUT", f"/v1/pipelines/{p}/runs/{r}/console", '{"std_out": "\\ud800", "std_err": ""}'),
        (w, "POST", f"/v1/pipelines/{p}/runs/{r}/console", '{"std_out": {"offset": 0, "data": "\\ud800"}}'),
        (w, "PUT", f"/v1/pipelines/{p}/runs/{r}/state", '{"state": "FAILED", "failure_reason": "\\ud800"}'),
        (w, "POST", f"/v1/pipelines/{p}/runs/{r}/console", '{"std_out": {"offset": 99999999999999999999, "data": "x"}}'),
        (w, "POST", f"/v1/pipelines/{p}/runs/{r}/console", '{"std_out": {"offset": 9223372036854775808, "data": "x"}}'),
        (w, "POST", f"/v1/pipelines/{p}/runs/{r}/artifacts/register", '{"name": "x.csv", "key": "\\ud800", "size": 1, "sha256": "' + "0"*64 + '", "content_type": "a"}'),
        (w, "POST", f"/v1/pipelines/{p}/runs/{r}/artifacts/register", '{"name": "x.csv", "key": "k", "size": 99999999999999999999999, "sha256": "' + "0"*64 + '", "content_type": "a"}'),
        (a, "POST", "/v1/applications", '{"name": "\\ud800", "permissions": ["ADMIN"]}'),
        (c, "GET", "/v1/pipelines?limit=1&cursor=" + "djE6OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5", None),
        (c, "GET", "/v1/pipelines?cursor=djE6LTE", None),
        (c, "GET", f"/v1/pipelines/{p}/runs?limit=1&cursor=djE6OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5", None),
        (c, "DELETE", f"/v1/pipelines/{p}/files/%ED%A0%80", None),
        (c, "DELETE", f"/v1/pipelines/{p}/files/%C2%80", None),
        (c, "GET", f"/v1/pipelines/%ED%A0%80", None),
        (w, "POST", f"/v1/pipelines/{p}/runs/{r}/artifacts?name=%ED%A0%80", "x"),
        (c, "POST", "/v1/pipelines/search", '{"uuids": ["\\ud800"]}'),
    ]
    with c:
        for fields in ({"defines": '{"A": "\\ud800"}'}, {"defines": '{"\\ud800": "x"}'}, {"inputs": '[{"name": "a.csv", "url": "https://example.com/\\ud800"}]'}, {"callback_url": "https://example.com/\udc80"}):
            try:
                resp = c.post(f"/v1/pipelines/{p}/runs", data=fields, files=[("files", ("a.glm", b"x"))])
                print("PROBE MP", resp.status_code, fields, resp.text[:200])
            except Exception as exc:
                print("PROBE MP EXC", fields, repr(exc)[:300])
        for fields in ({"defines": '{"A": "\\ud800"}'},):
            resp = c.post(f"/v1/workflows/{s['workflow_uuid']}/runs", data=fields, files=[("files", ("a.glm", b"x"))])
            print("PROBE MPW", resp.status_code, fields, resp.text[:200])
    for client, method, url, body in tries:
        try:
            with client:
                resp = client.request(method, url, data=body.encode("utf-8") if body else None, headers=H if body else {})
        except Exception as exc:
            print("PROBE EXC", method, url[:60], (body or "")[:60], repr(exc)[:200])
            continue
        print("PROBE", resp.status_code, method, url[:60], (body or "")[:60], resp.text[:150])
