// runtime.cpp -- the CPU emulator's scheduler (see cuda_emu.h). Compiled into the same shared
// library as one kernel file and its generated launch wrappers.
//
// A fiber is started once with swapcontext (makecontext gives it its own stack); after that,
// fibers and the scheduler switch with _setjmp/_longjmp, which skip the two signal-mask system
// calls swapcontext makes (about 4x faster; built with -U_FORTIFY_SOURCE, whose longjmp check
// refuses a jump to another stack).
#include <setjmp.h>
#include <ucontext.h>
#include <stdlib.h>
#include <string>
#include <vector>

namespace emu {
dim3 thread_idx, block_idx, block_dim, grid_dim;
unsigned char* dynamic_shared = nullptr;

namespace {
enum State { READY, AT_BARRIER, AT_WARP, DONE };
struct Fiber {
    ucontext_t ctx;  // only to start the fiber on its stack
    jmp_buf jb;      // where it continues after a yield
    bool started;
    State state;
    dim3 tid;
};

const size_t kStack = 64 * 1024;  // per CUDA thread; kernels keep small local arrays
std::vector<Fiber> fibers;
std::vector<unsigned long long> slots;  // a warp exchange slot per thread
char* stacks = nullptr;
size_t stacks_size = 0;
std::vector<unsigned char> shared_buf;
ucontext_t scheduler;
jmp_buf scheduler_jb;
int current = -1;
void (*body)(void*) = nullptr;
void* body_arg = nullptr;
bool failed = false;
std::string message;
unsigned long long shuffle_state = 0x9E3779B97F4A7C15ull;  // the same sequence in every process

// Fisher-Yates with xorshift64: the same sequence in every process, so failures reproduce.
template <typename I>
void shuffle(I* a, size_t n) {
    for (size_t k = n; k > 1; --k) {
        shuffle_state ^= shuffle_state << 13;
        shuffle_state ^= shuffle_state >> 7;
        shuffle_state ^= shuffle_state << 17;
        const size_t j = static_cast<size_t>(shuffle_state % k);
        const I t = a[k - 1];
        a[k - 1] = a[j];
        a[j] = t;
    }
}

void yield(State s) {
    fibers[current].state = s;
    if (_setjmp(fibers[current].jb) == 0) _longjmp(scheduler_jb, 1);
}

void fail(const std::string& why) {
    failed = true;
    message = why;
    _longjmp(scheduler_jb, 1);  // never resumed: the scheduler abandons the launch
}

void entry() {
    body(body_arg);
    fibers[current].state = DONE;
    _longjmp(scheduler_jb, 1);  // a fiber never returns (its uc_link context would be stale)
}

std::string where() {
    return " (block " + std::to_string(block_idx.x) + "," + std::to_string(block_idx.y) + "," +
           std::to_string(block_idx.z) + ")";
}

bool run_block(int T) {
    for (int i = 0; i < T; ++i) {
        Fiber& f = fibers[i];
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = stacks + static_cast<size_t>(i) * kStack;
        f.ctx.uc_stack.ss_size = kStack;
        f.ctx.uc_link = nullptr;
        makecontext(&f.ctx, entry, 0);
        f.started = false;
        f.state = READY;
        f.tid = dim3(i % block_dim.x, (i / block_dim.x) % block_dim.y,
                     i / (block_dim.x * block_dim.y));
    }
    const int warps = (T + 31) / 32;
    std::vector<int> order(static_cast<size_t>(T));
    for (int i = 0; i < T; ++i) order[i] = i;
    for (;;) {
        // Between two barriers the threads run one after another in a fresh random order, so a
        // missing __syncthreads/__syncwarp (a thread reading what another writes in the same
        // phase) shows whichever of the two runs first on the GPU.
        shuffle(order.data(), order.size());
        for (int i : order) {
            if (fibers[i].state != READY) continue;
            current = i;
            thread_idx = fibers[i].tid;
            if (_setjmp(scheduler_jb) == 0) {
                if (!fibers[i].started) {
                    fibers[i].started = true;
                    swapcontext(&scheduler, &fibers[i].ctx);
                } else {
                    _longjmp(fibers[i].jb, 1);
                }
            }
            if (failed) return false;
        }
        int done = 0, at_barrier = 0;
        for (int i = 0; i < T; ++i) {
            done += fibers[i].state == DONE;
            at_barrier += fibers[i].state == AT_BARRIER;
        }
        if (done == T) return true;
        bool released = false;
        for (int w = 0; w < warps; ++w) {
            const int lo = w * 32, hi = lo + 32 < T ? lo + 32 : T;
            int waiting = 0;
            for (int i = lo; i < hi; ++i) waiting += fibers[i].state == AT_WARP;
            if (waiting == hi - lo) {
                for (int i = lo; i < hi; ++i) fibers[i].state = READY;
                released = true;
            }
        }
        if (released) continue;
        if (at_barrier == T) {
            for (int i = 0; i < T; ++i) fibers[i].state = READY;
            continue;
        }
        failed = true;
        message = at_barrier > 0 && at_barrier + done == T
                      ? "__syncthreads() not reached by every thread: " +
                            std::to_string(done) + " of " + std::to_string(T) + " had exited"
                      : "threads of a warp or block are waiting at different barriers "
                        "(a warp primitive or __syncthreads() under divergent control flow)";
        message += where();
        return false;
    }
}
}  // namespace

void syncthreads() { yield(AT_BARRIER); }
void syncwarp() { yield(AT_WARP); }

unsigned long long exchange(unsigned long long bits, int src_lane) {
    const int me = current;
    const int src = (me / 32) * 32 + src_lane;
    if (src >= static_cast<int>(fibers.size()) ||
        src >= static_cast<int>(block_dim.x * block_dim.y * block_dim.z))
        fail("warp shuffle reads lane " + std::to_string(src_lane) +
             ", which does not exist in a partial warp" + where());
    slots[me] = bits;
    yield(AT_WARP);  // every lane has written
    const unsigned long long r = slots[src];
    yield(AT_WARP);  // every lane has read before any lane writes again
    return r;
}

void check_mask(unsigned int mask, const char* what) {
    if (mask != 0xffffffffu)
        fail(std::string(what) + ": only the full warp mask 0xffffffff is emulated" + where());
}

int launch(const unsigned* grid, const unsigned* block, size_t shared_bytes, void (*fn)(void*),
           void* arg) {
    failed = false;
    message.clear();
    const long long T = static_cast<long long>(block[0]) * block[1] * block[2];
    if (T < 1 || T > 1024 || block[2] > 64) {
        failed = true;
        message = "invalid block shape (" + std::to_string(block[0]) + ", " +
                  std::to_string(block[1]) + ", " + std::to_string(block[2]) + ")";
        return -1;
    }
    if (grid[0] < 1 || grid[1] < 1 || grid[2] < 1 || grid[1] > 65535 || grid[2] > 65535) {
        failed = true;
        message = "invalid grid shape";
        return -1;
    }
    if (shared_bytes > 227 * 1024) {
        failed = true;
        message = "dynamic shared memory over the 227 KiB a Hopper block can have";
        return -1;
    }
    block_dim = dim3(block[0], block[1], block[2]);
    grid_dim = dim3(grid[0], grid[1], grid[2]);
    fibers.assign(static_cast<size_t>(T), Fiber());
    slots.assign(static_cast<size_t>(T), 0);
    if (stacks_size < static_cast<size_t>(T) * kStack) {
        free(stacks);
        stacks_size = static_cast<size_t>(T) * kStack;
        stacks = static_cast<char*>(malloc(stacks_size));
    }
    shared_buf.assign(shared_bytes + 16, 0xA5);  // poisoned, as shared memory starts undefined
    dynamic_shared = shared_buf.data();
    body = fn;
    body_arg = arg;
    // Blocks run one at a time in a shuffled order: a GPU promises no order, so a kernel that
    // relies on one (block 0 first, the last block last) fails here too.
    const unsigned long long blocks = 1ull * grid[0] * grid[1] * grid[2];
    std::vector<unsigned long long> order(blocks);
    for (unsigned long long b = 0; b < blocks; ++b) order[b] = b;
    shuffle(order.data(), order.size());
    for (unsigned long long b : order) {
        block_idx = dim3(static_cast<unsigned>(b % grid[0]),
                         static_cast<unsigned>((b / grid[0]) % grid[1]),
                         static_cast<unsigned>(b / (1ull * grid[0] * grid[1])));
        if (!run_block(static_cast<int>(T))) return -1;
    }
    return 0;
}
}  // namespace emu

extern "C" const char* emu_error() { return emu::message.c_str(); }
