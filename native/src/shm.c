/*
 * Poolscope's shared-memory addon (Linux). N-API, so one build loads on every Node version the
 * library is used with.
 *
 *   createSegment(size)            -> fd     an anonymous memfd of `size` bytes (never in /dev/shm)
 *   openSegment(pid, fd)           -> fd     another process's segment, via /proc/<pid>/fd/<fd>
 *   mapSegment(fd, size)           -> ArrayBuffer over a MAP_SHARED mapping (unmapped on GC)
 *   closeFd(fd)
 *   futexWait(i32, index, expected, timeoutMs) -> "ok" | "not-equal" | "timed-out"
 *   futexWake(i32, index, count)   -> woken  (shared futexes: they work across processes)
 *   setParentDeathSignal(signal)             the kernel signals this process when its parent dies
 *   osThreadId()                   -> tid    the calling thread's kernel id (gettid): unique
 *                                            among live threads of every process, < 2^22
 *
 * A segment lives as long as a file descriptor or a mapping of it: nothing to clean up by name,
 * and nothing left behind when a process is killed.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <stdlib.h>
#include <unistd.h>

#define CHECK(call)                                                   \
  do {                                                                \
    if ((call) != napi_ok) {                                          \
      napi_throw_error(env, NULL, "poolscope_shm: bad arguments");    \
      return NULL;                                                    \
    }                                                                 \
  } while (0)

static napi_value throw_errno(napi_env env, const char* what) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, strerror(errno));
  napi_throw_error(env, NULL, message);
  return NULL;
}

static napi_value int_value(napi_env env, int64_t v) {
  napi_value out;
  napi_create_int64(env, v, &out);
  return out;
}

static napi_value CreateSegment(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int64_t size;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_int64(env, argv[0], &size));
  if (size <= 0) {
    napi_throw_range_error(env, NULL, "segment size must be positive");
    return NULL;
  }
  int fd = (int)syscall(SYS_memfd_create, "poolscope", MFD_CLOEXEC);
  if (fd < 0) return throw_errno(env, "memfd_create");
  if (ftruncate(fd, size) != 0) {
    close(fd);
    return throw_errno(env, "ftruncate");
  }
  return int_value(env, fd);
}

static napi_value OpenSegment(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int64_t pid, fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_int64(env, argv[0], &pid));
  CHECK(napi_get_value_int64(env, argv[1], &fd));
  char path[64];
  snprintf(path, sizeof path, "/proc/%lld/fd/%lld", (long long)pid, (long long)fd);
  int mine = open(path, O_RDWR | O_CLOEXEC);
  if (mine < 0) return throw_errno(env, path);
  return int_value(env, mine);
}

typedef struct {
  void* base;
  size_t size;
} Mapping;

static void unmap(napi_env env, void* data, void* hint) {
  Mapping* m = (Mapping*)hint;
  munmap(m->base, m->size);
  free(m);
}

static napi_value MapSegment(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int64_t fd, size;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_int64(env, argv[0], &fd));
  CHECK(napi_get_value_int64(env, argv[1], &size));
  void* base = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, (int)fd, 0);
  if (base == MAP_FAILED) return throw_errno(env, "mmap");
  Mapping* m = malloc(sizeof *m);
  m->base = base;
  m->size = (size_t)size;
  napi_value buffer;
  napi_status s = napi_create_external_arraybuffer(env, base, (size_t)size, unmap, m, &buffer);
  if (s != napi_ok) {
    munmap(base, (size_t)size);
    free(m);
    napi_throw_error(env, NULL,
                     s == napi_no_external_buffers_allowed
                         ? "this runtime forbids external buffers (a V8 sandbox, as in Electron)"
                         : "napi_create_external_arraybuffer failed");
    return NULL;
  }
  return buffer;
}

static napi_value CloseFd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int64_t fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_int64(env, argv[0], &fd));
  close((int)fd);
  return NULL;
}

/* The address of element `index` of an Int32Array. */
static int32_t* word(napi_env env, napi_value array, napi_value indexValue) {
  napi_typedarray_type type;
  size_t length, offset;
  void* data;
  napi_value buffer;
  int64_t index;
  if (napi_get_typedarray_info(env, array, &type, &length, &data, &buffer, &offset) != napi_ok ||
      type != napi_int32_array) {
    napi_throw_type_error(env, NULL, "an Int32Array is expected");
    return NULL;
  }
  if (napi_get_value_int64(env, indexValue, &index) != napi_ok || index < 0 || (size_t)index >= length) {
    napi_throw_range_error(env, NULL, "index out of range");
    return NULL;
  }
  return (int32_t*)data + index;
}

static napi_value FutexWait(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  int32_t expected;
  double ms = INFINITY;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t* address = word(env, argv[0], argv[1]);
  if (!address) return NULL;
  CHECK(napi_get_value_int32(env, argv[2], &expected));
  if (argc > 3) napi_get_value_double(env, argv[3], &ms);
  struct timespec ts, *timeout = NULL;
  if (isfinite(ms) && ms >= 0) {
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(fmod(ms, 1000.0) * 1e6);
    timeout = &ts;
  }
  long r;
  do {
    r = syscall(SYS_futex, address, FUTEX_WAIT, expected, timeout, NULL, 0);
  } while (r != 0 && errno == EINTR && timeout == NULL);
  const char* result = r == 0 ? "ok" : errno == EAGAIN ? "not-equal" : errno == ETIMEDOUT ? "timed-out" : "ok";
  napi_value out;
  napi_create_string_utf8(env, result, NAPI_AUTO_LENGTH, &out);
  return out;
}

static napi_value FutexWake(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t count;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t* address = word(env, argv[0], argv[1]);
  if (!address) return NULL;
  CHECK(napi_get_value_int32(env, argv[2], &count));
  long woken = syscall(SYS_futex, address, FUTEX_WAKE, count, NULL, NULL, 0);
  return int_value(env, woken < 0 ? 0 : woken);
}

static napi_value SetParentDeathSignal(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t signal;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_int32(env, argv[0], &signal));
  if (prctl(PR_SET_PDEATHSIG, signal) != 0) return throw_errno(env, "prctl(PR_SET_PDEATHSIG)");
  return NULL;
}

static napi_value OsThreadId(napi_env env, napi_callback_info info) {
  return int_value(env, (int64_t)syscall(SYS_gettid));
}

NAPI_MODULE_INIT() {
  napi_property_descriptor methods[] = {
      {"createSegment", NULL, CreateSegment, NULL, NULL, NULL, napi_default, NULL},
      {"openSegment", NULL, OpenSegment, NULL, NULL, NULL, napi_default, NULL},
      {"mapSegment", NULL, MapSegment, NULL, NULL, NULL, napi_default, NULL},
      {"closeFd", NULL, CloseFd, NULL, NULL, NULL, napi_default, NULL},
      {"futexWait", NULL, FutexWait, NULL, NULL, NULL, napi_default, NULL},
      {"futexWake", NULL, FutexWake, NULL, NULL, NULL, napi_default, NULL},
      {"setParentDeathSignal", NULL, SetParentDeathSignal, NULL, NULL, NULL, napi_default, NULL},
      {"osThreadId", NULL, OsThreadId, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof methods / sizeof methods[0], methods);
  return exports;
}
