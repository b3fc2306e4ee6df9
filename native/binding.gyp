{
  "targets": [
    {
      "target_name": "poolscope_shm",
      "sources": ["src/shm.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
