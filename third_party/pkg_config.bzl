"""A repository rule that wraps a system library found by pkg-config.

It runs `pkg-config --cflags --libs` for the given modules when the repository
is fetched, symlinks every `-I` directory under `include/<n>` inside the
external repository (Bazel refuses absolute include paths), and exposes one
cc_library named like the repository whose linkopts are pkg-config's `--libs`.

Compile flags other than -I (DPDK's `-include rte_config.h -march=...`) are
written to `copts.bzl` as COPTS: they do not propagate through cc_library, so
targets that include the library's headers load and add them explicitly.
"""

def _split(s):
    return [x for x in s.strip().split(" ") if x]

def _pkg_config_library_impl(rctx):
    pkg_config = rctx.which("pkg-config")
    if pkg_config == None:
        fail("pkg-config not found: run tools/setup.sh (apt-get install pkg-config)")
    args = [str(pkg_config)] + rctx.attr.modules
    cflags = rctx.execute(args + ["--cflags"])
    if cflags.return_code != 0:
        fail("pkg-config --cflags %s failed: %s\nInstall the Debian -dev packages with tools/setup.sh" %
             (" ".join(rctx.attr.modules), cflags.stderr))
    libs = rctx.execute(args + ["--libs"])
    if libs.return_code != 0:
        fail("pkg-config --libs %s failed: %s" % (" ".join(rctx.attr.modules), libs.stderr))

    includes = []
    copts = []
    n = 0
    for flag in _split(cflags.stdout):
        if flag.startswith("-I"):
            path = flag[2:]
            if path in ["/usr/include", "/usr/local/include"]:
                continue
            link = "include/%d" % n
            rctx.symlink(path, link)
            includes.append(link)
            n += 1
        else:
            copts.append(flag)

    rctx.file("copts.bzl", "COPTS = %r\n" % copts)
    rctx.file("BUILD.bazel", """
package(default_visibility = ["//visibility:public"])

cc_library(
    name = "{name}",
    hdrs = glob(["include/**/*.h"], allow_empty = True),
    includes = {includes},
    linkopts = {linkopts},
)
""".format(
        name = rctx.attr.name,
        includes = repr(includes),
        linkopts = repr(_split(libs.stdout)),
    ))

pkg_config_library = repository_rule(
    implementation = _pkg_config_library_impl,
    attrs = {
        "modules": attr.string_list(mandatory = True),
    },
    local = True,
)
