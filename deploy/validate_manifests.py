"""Checks the rendered Kubernetes manifests and compose.yaml offline; run by deploy/validate.sh.

  python3 validate_manifests.py --secrets FILE --compose FILE --config FILE KUSTOMIZATION=RENDERED.yaml...
  python3 validate_manifests.py --generated FILE...

Every resource of every rendered kustomization, and the Secret template, is validated with
kubernetes-validate, strictly (unknown fields are errors), against each Kubernetes version in
VERSIONS; a kind it has no schema for is an error too. Then what a schema cannot see: references
between the resources (Secrets and their keys, ConfigMaps, Services and their selectors and
ports, probes, the ServiceAccount, the namespace), the containers' security settings, and the
compose file's structure. Nothing here talks to a Kubernetes API server or to Docker.

With --generated, only the schemas: every object of each FILE (what the gateway's Kubernetes
deployer applies, written out by its tests) is validated the same strict way.
"""

import argparse
import ipaddress
import os
import sys

import yaml
import kubernetes_validate.utils as kv

# The oldest Kubernetes the manifests are written for (the preStop `sleep` action is on by
# default from 1.30) and the newest kubernetes-validate knows.
VERSIONS = ["1.30.0", kv.latest_version()]

WORKLOADS = {"StatefulSet", "Deployment", "DaemonSet", "ReplicaSet", "Job"}

errors = []


def error(where, message):
    errors.append(f"{where}: {message}")


def load_all(path):
    with open(path) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def name_of(resource):
    return f"{resource.get('kind', '?')}/{resource.get('metadata', {}).get('name', '?')}"


def validate_schemas(path, resources):
    for resource in resources:
        for version in VERSIONS:
            try:
                kv.validate(resource, version, strict=True)
            except kv.ValidationError as e:
                location = ".".join(str(p) for p in e.path)
                error(f"{path} {name_of(resource)} (Kubernetes {e.version})", f"{location}: {e.message}")
            except kv.SchemaNotFoundError as e:
                error(f"{path} {name_of(resource)}", e.message)
            except kv.VersionNotSupportedError as e:
                error(path, e.message)


def pod_templates(resources):
    for resource in resources:
        if resource.get("kind") in WORKLOADS:
            yield resource, resource["spec"]["template"]


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_references(path, resources, secrets):
    by_kind = {}
    for resource in resources:
        by_kind.setdefault(resource["kind"], {})[resource["metadata"]["name"]] = resource
    where = lambda resource: f"{path} {name_of(resource)}"

    if "Secret" in by_kind:
        error(path, "renders a Secret: secrets are created by the operator, never applied with the manifests")

    namespaces = set(by_kind.get("Namespace", {}))
    cluster_scoped = {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
    for resource in resources:
        if resource["kind"] in cluster_scoped:
            continue
        namespace = resource["metadata"].get("namespace")
        if namespace not in namespaces:
            error(where(resource), f"namespace {namespace!r} is not one the manifests create")

    for binding in by_kind.get("ClusterRoleBinding", {}).values():
        if binding["roleRef"]["name"] not in by_kind.get("ClusterRole", {}):
            error(where(binding), f"binds the missing ClusterRole {binding['roleRef']['name']}")
        for subject in binding.get("subjects", []):
            if subject["kind"] == "ServiceAccount":
                if subject["name"] not in by_kind.get("ServiceAccount", {}) or subject.get("namespace") not in namespaces:
                    error(where(binding), f"binds the missing ServiceAccount {subject.get('namespace')}/{subject['name']}")

    for binding in by_kind.get("ValidatingAdmissionPolicyBinding", {}).values():
        if binding["spec"]["policyName"] not in by_kind.get("ValidatingAdmissionPolicy", {}):
            error(where(binding), f"binds the missing ValidatingAdmissionPolicy {binding['spec']['policyName']}")

    templates = list(pod_templates(resources))
    for workload, template in templates:
        spec = template["spec"]
        labels = template["metadata"].get("labels", {})
        selector = workload["spec"].get("selector", {}).get("matchLabels", {})
        if not selects(selector, labels):
            error(where(workload), "its selector does not select its own pod template")
        account = spec.get("serviceAccountName")
        if account and account not in by_kind.get("ServiceAccount", {}):
            error(where(workload), f"uses the missing ServiceAccount {account}")
        if workload["kind"] == "StatefulSet":
            governing = by_kind.get("Service", {}).get(workload["spec"]["serviceName"])
            if governing is None or governing["spec"].get("clusterIP") != "None":
                error(where(workload), f"serviceName {workload['spec']['serviceName']} is not a headless Service")
        for volume in spec.get("volumes", []):
            if "configMap" in volume and volume["configMap"]["name"] not in by_kind.get("ConfigMap", {}):
                error(where(workload), f"volume {volume['name']} mounts the missing ConfigMap {volume['configMap']['name']}")
        claims = {c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])}
        volumes = {v["name"] for v in spec.get("volumes", [])} | claims
        pod_security = spec.get("securityContext", {})
        if pod_security.get("runAsNonRoot") is not True:
            error(where(workload), "the pod does not set runAsNonRoot: true")
        if pod_security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            error(where(workload), "the pod does not use the RuntimeDefault seccomp profile")
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            cwhere = f"{where(workload)} container {container['name']}"
            ports = {p.get("name") for p in container.get("ports", [])}
            for probe_name in ("startupProbe", "livenessProbe", "readinessProbe"):
                probe = container.get(probe_name, {})
                for handler in ("httpGet", "tcpSocket", "grpc"):
                    port = probe.get(handler, {}).get("port")
                    if isinstance(port, str) and port not in ports:
                        error(cwhere, f"{probe_name} uses the undeclared port {port}")
            for mount in container.get("volumeMounts", []):
                if mount["name"] not in volumes:
                    error(cwhere, f"mounts the missing volume {mount['name']}")
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref.get("key") not in secrets.get(ref.get("name"), set()):
                    error(cwhere, f"{variable['name']} reads {ref.get('name')}/{ref.get('key')}, which the Secret template does not have")
            security = container.get("securityContext", {})
            if security.get("allowPrivilegeEscalation") is not False:
                error(cwhere, "allowPrivilegeEscalation is not false")
            if security.get("readOnlyRootFilesystem") is not True:
                error(cwhere, "the root filesystem is not read-only")
            if "ALL" not in security.get("capabilities", {}).get("drop", []):
                error(cwhere, "does not drop ALL capabilities")
            resources_ = container.get("resources", {})
            if not resources_.get("requests") or "memory" not in resources_.get("limits", {}):
                error(cwhere, "has no resource requests or no memory limit")

    for service in by_kind.get("Service", {}).values():
        selector = service["spec"].get("selector", {})
        matched = [(w, t) for w, t in templates if selects(selector, t["metadata"].get("labels", {}))]
        if not matched:
            error(where(service), "selects no pod template")
        for port in service["spec"].get("ports", []):
            target = port.get("targetPort")
            if isinstance(target, str):
                for workload, template in matched:
                    names = {p.get("name") for c in template["spec"]["containers"] for p in c.get("ports", [])}
                    if target not in names:
                        error(where(service), f"targetPort {target} is not a port of {name_of(workload)}")

    for budget in by_kind.get("PodDisruptionBudget", {}).values():
        selector = budget["spec"].get("selector", {}).get("matchLabels", {})
        if not any(selects(selector, t["metadata"].get("labels", {})) for _, t in templates):
            error(where(budget), "selects no pod template")

    for policy in by_kind.get("NetworkPolicy", {}).values():
        selector = policy["spec"].get("podSelector", {}).get("matchLabels", {})
        matched = [t for _, t in templates if selects(selector, t["metadata"].get("labels", {}))]
        if not matched:
            error(where(policy), "selects no pod template")
        names = {p.get("name") for t in matched for c in t["spec"]["containers"] for p in c.get("ports", [])}
        for rule in policy["spec"].get("ingress", []):
            for port in rule.get("ports", []):
                if isinstance(port.get("port"), str) and port["port"] not in names:
                    error(where(policy), f"allows the undeclared port {port['port']}")


def check_compose(path, statefulset_config_files):
    where = path
    try:
        with open(path) as f:
            compose = yaml.safe_load(f)  # applies the `<<` merge keys
    except yaml.YAMLError as e:
        error(where, f"is not YAML: {e}")
        return
    services = compose.get("services") or {}
    if "redis" not in services:
        error(where, "has no redis service")
    nodes = {name: s for name, s in services.items() if name.startswith("node-")}
    if len(nodes) < 3:
        error(where, f"has {len(nodes)} gateway nodes, not 3")
    subnets = [
        ipaddress.ip_network(c["subnet"])
        for network in (compose.get("networks") or {}).values()
        for c in ((network or {}).get("ipam") or {}).get("config", [])
    ]
    base = os.path.dirname(path)
    seen_ids, seen_ports = set(), set()
    for name, service in nodes.items():
        swhere = f"{where} service {name}"
        env = service.get("environment") or {}
        if not isinstance(env, dict):
            error(swhere, "environment is not a mapping")
            continue
        for key in ("image", "command", "stop_grace_period"):
            if key not in service:
                error(swhere, f"has no {key}")
        node_id = env.get("CONNECTORS_NODE_ID")
        if not node_id or node_id in seen_ids:
            error(swhere, f"CONNECTORS_NODE_ID {node_id!r} is missing or not unique")
        seen_ids.add(node_id)
        listen = str(env.get("CONNECTORS_CLUSTER_LISTEN", ""))
        host = listen.rsplit(":", 1)[0]
        addresses = [n.get("ipv4_address") for n in (service.get("networks") or {}).values() if isinstance(n, dict)]
        if host not in addresses:
            error(swhere, f"CONNECTORS_CLUSTER_LISTEN {listen!r} is not the service's fixed address {addresses}")
        elif not any(ipaddress.ip_address(host) in subnet for subnet in subnets):
            error(swhere, f"{host} is outside the network's subnets")
        for port in service.get("ports", []):
            if port in seen_ports:
                error(swhere, f"publishes {port} twice")
            seen_ports.add(port)
        config_target = env.get("CONNECTORS_CONFIG")
        mounts = [v.split(":") for v in service.get("volumes", []) if isinstance(v, str)]
        sources = [m[0] for m in mounts if len(m) >= 2 and m[1] == config_target]
        if len(sources) != 1:
            error(swhere, f"does not mount a config file at CONNECTORS_CONFIG ({config_target})")
            continue
        source = os.path.normpath(os.path.join(base, sources[0]))
        if not os.path.isfile(source):
            error(swhere, f"mounts the missing config file {sources[0]}")
        elif source not in statefulset_config_files:
            error(swhere, f"mounts {sources[0]}, not the config file the Kubernetes manifests use")


def validate_generated(paths):
    checked = 0
    for path in paths:
        resources = load_all(path)
        if not resources:
            error(path, "has no object")
        validate_schemas(path, resources)
        checked += len(resources)
    for message in errors:
        print(f"ERROR {message}")
    versions = ", ".join(kv.major_minor(v) for v in VERSIONS)
    if errors:
        print(f"deploy: {len(errors)} problem(s) in the generated objects (Kubernetes {versions})")
        return 1
    print(f"deploy: {checked} generated objects valid against Kubernetes {versions} (strict schemas, offline)")
    return 0


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--generated":
        return validate_generated(sys.argv[2:])
    parser = argparse.ArgumentParser()
    parser.add_argument("--secrets", required=True)
    parser.add_argument("--compose", required=True)
    parser.add_argument("--config", required=True, help="the gateway config file of the ConfigMap")
    parser.add_argument("rendered", nargs="+", help="KUSTOMIZATION_DIR=RENDERED_FILE")
    args = parser.parse_args()

    secret_docs = load_all(args.secrets)
    validate_schemas(args.secrets, secret_docs)
    secrets = {
        doc["metadata"]["name"]: set((doc.get("stringData") or {}) | (doc.get("data") or {}))
        for doc in secret_docs
        if doc.get("kind") == "Secret"
    }
    checked = 0
    for pair in args.rendered:
        kustomization, path = pair.split("=", 1)
        resources = load_all(path)
        validate_schemas(kustomization, resources)
        check_references(kustomization, resources, secrets)
        checked += len(resources)
    check_compose(args.compose, {os.path.normpath(args.config)})

    for message in errors:
        print(f"ERROR {message}")
    versions = ", ".join(kv.major_minor(v) for v in VERSIONS)
    if errors:
        print(f"deploy: {len(errors)} problem(s) in the manifests (Kubernetes {versions})")
        return 1
    print(
        f"deploy: {checked} rendered resources and the Secret template valid against Kubernetes {versions} "
        f"(strict schemas, offline); references, security settings and {args.compose} consistent"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
