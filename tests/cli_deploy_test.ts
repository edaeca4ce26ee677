// The service's command line under the permission set it ships with (-P=service), and
// the deploy files checked by the tools that read them: systemd-analyze and promtool.
import assert from "node:assert/strict";
import { FLAG_ENV_NAMES, flagName } from "../orchestration/command_line.ts";
import { VERSION } from "../orchestration/version.ts";

const ROOT = new URL("../", import.meta.url);
const text = new TextDecoder();

async function service(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command("deno", {
    args: ["run", "-P=service", "main.ts", ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = text.decode(out.stderr).split("\n").filter((l) =>
    l !== "" && !l.startsWith("Warning Permissions")
  );
  return { code: out.code, stdout: text.decode(out.stdout), stderr };
}

Deno.test("cli - --help lists every setting with its flag, and exits 0; --version prints the version", async () => {
  const help = await service(["--help"]);
  assert.equal(help.code, 0);
  for (const name of FLAG_ENV_NAMES) assert.ok(help.stdout.includes(`--${flagName(name)}=VALUE`), name);
  for (const name of FLAG_ENV_NAMES) assert.ok(help.stdout.includes(name), name);
  const version = await service(["--version"]);
  assert.equal(version.code, 0);
  assert.equal(version.stdout.trim(), `sip-signaling ${VERSION}`);
});

Deno.test("cli - an unknown flag, a bad value, a port in use: one line on stderr naming it, exit 2", async () => {
  const unknown = await service(["--no-such-flag=1"]);
  assert.equal(unknown.code, 2);
  assert.equal(unknown.stderr.length, 1, unknown.stderr.join("\n"));
  assert.match(unknown.stderr[0] ?? "", /no-such-flag/);
  const bad = await service(["--embedded", "--setup-timeout-ms=soon"]);
  assert.equal(bad.code, 2);
  assert.deepEqual(bad.stderr.length, 1, bad.stderr.join("\n"));
  assert.match(bad.stderr[0] ?? "", /SIP_SIGNALING_SERVICE_SETUP_TIMEOUT_MS/);
  const busy = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const port = (busy.addr as Deno.NetAddr).port;
    const inUse = await service(["--embedded", `--sip-port=${port}`, "--listen-address=127.0.0.1"], {
      SIP_SIGNALING_SERVICE_HTTP_PORT: "0",
      SIP_SIGNALING_SERVICE_GRPC_PORT: "0",
    });
    assert.equal(inUse.code, 2);
    assert.equal(inUse.stderr.length, 1, inUse.stderr.join("\n"));
    assert.match(inUse.stderr[0] ?? "", /SIP_SIGNALING_SERVICE_SIP_PORT.*address already in use/);
    assert.doesNotMatch(inUse.stderr.join("\n"), /\n\s+at /, "no stack trace");
  } finally {
    busy.close();
  }
});

Deno.test("deploy - the systemd unit passes systemd-analyze verify, and its stop timeout outlasts the drain", async () => {
  const unit = await Deno.readTextFile(new URL("deploy/systemd/sip-signaling.service", ROOT));
  const dir = await Deno.makeTempDir();
  try {
    // verify wants ExecStart to exist: point it at a stand-in for the installed binary.
    await Deno.writeTextFile(`${dir}/sip-signaling`, "#!/bin/sh\n", { mode: 0o755 });
    await Deno.writeTextFile(
      `${dir}/sip-signaling.service`,
      unit.replace("ExecStart=/usr/local/bin/sip-signaling", `ExecStart=${dir}/sip-signaling`),
    );
    const out = await new Deno.Command("systemd-analyze", {
      args: ["verify", `${dir}/sip-signaling.service`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, text.decode(out.stderr));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  for (const line of ["DynamicUser=yes", "AmbientCapabilities=CAP_NET_BIND_SERVICE", "Restart=on-failure"]) {
    assert.ok(unit.includes(line), line);
  }
  assert.match(unit, /^EnvironmentFile=/m);
  const stop = Number(/^TimeoutStopSec=(\d+)$/m.exec(unit)?.[1]);
  assert.ok(stop > 3600, `TimeoutStopSec ${stop} s exceeds the default drain timeout (3600 s)`);
  const sysctl = await Deno.readTextFile(new URL("deploy/systemd/90-sip-signaling.conf", ROOT));
  assert.match(sysctl, /^net\.core\.rmem_default = \d+$/m);
});

Deno.test("deploy - the Prometheus alert rules pass promtool check rules", async () => {
  const out = await new Deno.Command("promtool", {
    args: ["check", "rules", new URL("deploy/prometheus/alerts.yml", ROOT).pathname],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, text.decode(out.stdout) + text.decode(out.stderr));
  assert.match(text.decode(out.stdout), /SUCCESS: \d+ rules found/);
});
