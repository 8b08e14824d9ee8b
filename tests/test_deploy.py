"""deploy/: the Docker, compose and Kubernetes files parse and agree with the app (its port 8501 and health
path /_stcore/health), keep sessions sticky and websockets open; nginx's config from deploy/serve.py is
valid (nginx -t, when nginx is installed) and routes by cookie."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy import serve

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
PORT, HEALTH = 8501, "/_stcore/health"


def manifests() -> dict[str, dict]:
    return {p.stem: yaml.safe_load(p.read_text()) for p in (DEPLOY / "k8s").glob("*.yaml")}


def test_kubernetes_manifests_agree_with_the_app():
    m = manifests()
    assert set(m) == {"deployment", "service", "ingress"}
    assert [x["kind"] for x in (m["deployment"], m["service"], m["ingress"])] == ["Deployment", "Service", "Ingress"]
    (c,) = m["deployment"]["spec"]["template"]["spec"]["containers"]
    assert c["ports"][0]["containerPort"] == PORT
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": HEALTH, "port": PORT}
    env = {e["name"]: e for e in c["env"]}
    assert env["KVLAB_WORKSHOP_DB"]["valueFrom"]["secretKeyRef"]["key"] == "url"  # the rooms' shared database
    labels = m["deployment"]["spec"]["template"]["metadata"]["labels"]
    assert m["deployment"]["spec"]["selector"]["matchLabels"] == labels == m["service"]["spec"]["selector"]
    svc = m["service"]["spec"]
    assert svc["sessionAffinity"] == "ClientIP" and svc["ports"][0]["targetPort"] == PORT
    ing = m["ingress"]
    assert ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    backend = ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": m["service"]["metadata"]["name"], "port": {"number": svc["ports"][0]["port"]}}


def test_docker_and_compose_agree_with_the_app():
    docker = (DEPLOY / "Dockerfile").read_text()
    assert f"EXPOSE {PORT}" in docker and f"127.0.0.1:{PORT}{HEALTH}" in docker
    assert f'"--server.port", "{PORT}"' in docker and "torch==" not in docker  # pins come from requirements
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    app = compose["services"]["app"]
    assert app["expose"] == [str(PORT)] and HEALTH in " ".join(app["healthcheck"]["test"])
    assert app["build"]["dockerfile"] == "deploy/Dockerfile"
    # one database for the workshop rooms, shared by every replica, reached as the app reads it
    db = compose["services"]["db"]
    assert app["environment"]["KVLAB_WORKSHOP_DB"].startswith("postgresql+psycopg://kvlab:kvlab@db:5432/")
    assert app["depends_on"]["db"]["condition"] == "service_healthy" and "pg_isready" in db["healthcheck"]["test"]
    conf = (DEPLOY / "nginx-compose.conf").read_text()
    assert f"server app:{PORT}" in conf and "hash $kvlab_route consistent" in conf and "Upgrade $http_upgrade" in conf


def test_serve_config_routes_by_cookie_and_upgrades_websockets(tmp_path):
    conf = serve.nginx_conf(tmp_path, "127.0.0.1", 8500, [8501, 8502])
    assert not any(f"@{k}@" in conf for k in ("DIR", "HOST", "PORT", "UPSTREAMS"))  # every placeholder filled
    assert "server 127.0.0.1:8501" in conf and "server 127.0.0.1:8502" in conf
    assert "hash $kvlab_route consistent" in conf and "Connection $connection_upgrade" in conf
    assert "least_conn" in conf and "proxy_pass http://$kvlab_pool" in conf  # no cookie: the least busy
    assert "listen 127.0.0.1:8500" in conf
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        pytest.skip("nginx is not installed here: the syntax check needs it (Debian: apt-get install nginx-light)")
    (tmp_path / "nginx.conf").write_text(conf)
    r = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr


def test_every_launcher_starts_the_app_with_the_same_environment():
    """make run, make serve (and the load test's servers), the Dockerfile and Kubernetes set what SERVER_ENV names
    (two malloc arenas), so what the bench measures is what is served."""
    assert serve.SERVER_ENV  # a launcher that drops it is caught below only if there is something to drop
    (c,) = manifests()["deployment"]["spec"]["template"]["spec"]["containers"]
    k8s = {e["name"]: e.get("value") for e in c["env"]}
    docker = next(line for line in (DEPLOY / "Dockerfile").read_text().splitlines() if line.startswith("ENV "))
    make_run = (DEPLOY.parent / "Makefile").read_text().split("\nrun:", 1)[1].split("\n\n", 1)[0]
    for name, value in serve.SERVER_ENV.items():
        assert k8s[name] == value
        assert f" {name}={value}" in f" {docker}"
        assert f"{name}={value} $(PY) -m streamlit run app.py" in make_run
