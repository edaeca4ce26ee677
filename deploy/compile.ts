// deno task compile: one executable, dist/sip-signaling, with the service's permission
// set. `deno compile` downloads its base runtime (denort) from Deno's download host;
// where that host is unreachable it fails with a long error, so this says in one line
// what to do instead (DENORT_BIN), and never leaves a partial binary behind.
// deno-lint-ignore-file no-console
const OUTPUT = "dist/sip-signaling";
const args = [
  "compile",
  "-P=service",
  "--include",
  "orchestration/reference/worker.ts",
  "--output",
  OUTPUT,
  "main.ts",
];
await Deno.remove(OUTPUT).catch(() => {});
const result = await new Deno.Command("deno", { args, stdout: "inherit", stderr: "piped" }).output();
if (result.code === 0) Deno.exit(0);
await Deno.remove(OUTPUT).catch(() => {});
const stderr = new TextDecoder().decode(result.stderr);
if (/dl\.deno\.land|denort|download/i.test(stderr) && Deno.env.get("DENORT_BIN") === undefined) {
  console.error(
    "sip-signaling: deno compile could not download its runtime (denort); set DENORT_BIN to a denort " +
      `${Deno.version.deno} binary for ${Deno.build.target} (from a machine that can reach dl.deno.land) and run again`,
  );
} else {
  console.error(stderr.trimEnd());
}
Deno.exit(result.code);
