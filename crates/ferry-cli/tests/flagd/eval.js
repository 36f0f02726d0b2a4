// Evaluates the read flag of each flagd file given for N targeting keys.
const { FlagdCore } = require("@openfeature/flagd-core");
const logger = { error() {}, warn() {}, info() {}, debug() {} };
const [flag, count, ...files] = process.argv.slice(2);
const out = [];
for (const file of files) {
  const core = new FlagdCore(undefined, logger);
  core.setConfigurations(require("fs").readFileSync(file, "utf8"));
  const on = [];
  for (let i = 0; i < Number(count); i++) {
    const r = core.resolveBooleanEvaluation(flag, false, { targetingKey: "user-" + i }, logger);
    if (r.value) on.push(i);
  }
  out.push(on);
}
console.log(JSON.stringify(out));
