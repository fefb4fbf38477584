import resource, subprocess, sys, os
env = dict(os.environ, PYTHONPATH="src", OMP_NUM_THREADS="1")
res = {"default": [], "linear16": []}
for rep in range(3):
    for name, extra in (("default", []), ("linear16", ["--encoder", "linear", "--task-option", "channels=16"])):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-m", "solsa.cli", "train", "--task", "uea:OSULeaf", "--seed", "0", "--epochs", "10",
                        "--out", f"/tmp/linenc/t-{name}", "--force", "--quiet", *extra], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        res[name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
print(res, {k: sorted(v)[1] for k, v in res.items()}, sorted(res["linear16"])[1] / sorted(res["default"])[1])
