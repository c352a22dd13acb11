{
  # libbpf is linked statically so the addon does not depend on the host's
  # libbpf version. Debian's libbpf.a is built as PIE, not PIC: its one
  # reference to a libc data symbol (stderr, used only by libbpf's default
  # print function) cannot be linked into a shared object. The action below
  # renames that reference to bpfnet_libbpf_stderr, which src/errors.cc
  # defines (hidden) as a copy of stderr. libelf.a is not PIC at all, so
  # libelf is linked dynamically; zlib's archive is PIC and linked statically.
  "variables": {
    "libbpf_archive": "<!(pkg-config --variable=libdir libbpf)/libbpf.a",
    "zlib_archive": "<!(pkg-config --variable=libdir zlib)/libz.a"
  },
  "targets": [
    {
      "target_name": "bpfnet_native",
      "sources": [
        "src/addon.cc",
        "src/errors.cc",
        "src/object.cc",
        "src/objectLoad.cc",
        "src/map.cc",
        "src/tc.cc",
        "src/prog.cc",
        "src/socket.cc",
        "src/ringbuf.cc",
        "src/cgroup.cc",
        "src/netlink.cc"
      ],
      "actions": [
        {
          "action_name": "libbpf_for_shared_object",
          "inputs": ["<(libbpf_archive)"],
          "outputs": ["<(PRODUCT_DIR)/libbpf_static.a"],
          "action": ["objcopy", "--redefine-sym", "stderr=bpfnet_libbpf_stderr", "<@(_inputs)", "<@(_outputs)"]
        }
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=gnu++17", "-fexceptions", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
      "libraries": ["<(PRODUCT_DIR)/libbpf_static.a", "-lelf", "<(zlib_archive)"],
      "ldflags": ["-Wl,--exclude-libs,ALL"]
    }
  ]
}
