// cuda-emu's scheduler: one block at a time on the calling OS thread, its
// threads as ucontext fibers switched at barriers (see cuda_emu.h).
#include "cuda_emu.h"

#include <stdlib.h>
#include <ucontext.h>

#include <vector>

namespace emu {
namespace {

constexpr unsigned MAX_THREADS = 1024;
constexpr size_t STACK_BYTES = 64 * 1024;
constexpr unsigned long long MAX_SHARED_BYTES = 228 * 1024;
constexpr int LANES = 32;

enum class State { Ready, AtBlockBarrier, AtWarpBarrier, Done };

struct Fiber {
    ucontext_t context;
    uint3 tid;
    int warp;
    int lane;
    State state;
};

struct Block {
    uint3 bid, bdim, gdim;
    void (*body)(void*);
    void* ctx;
    std::vector<Fiber> fibers;
    ucontext_t scheduler;
    Fiber* current = nullptr;
    unsigned live = 0, at_block = 0;
    std::vector<unsigned> warp_live, at_warp;
    std::vector<uint64_t> exchange;  // LANES slots per warp
    std::vector<unsigned char> shared;  // operator new aligns to 16 bytes
};

thread_local Block* tl_block = nullptr;
/// Fiber stacks, kept per OS thread from launch to launch.
thread_local std::vector<std::vector<unsigned char>> tl_stacks;

void release(State waiting, int warp) {
    Block& b = *tl_block;
    for (Fiber& f : b.fibers) {
        if (f.state == waiting && (warp < 0 || f.warp == warp)) f.state = State::Ready;
    }
    if (warp < 0)
        b.at_block = 0;
    else
        b.at_warp[warp] = 0;
}

/// Releases whatever barrier all live threads (of the block, or of a warp)
/// have now reached.
void release_complete(int warp) {
    Block& b = *tl_block;
    if (b.at_block > 0 && b.at_block == b.live) release(State::AtBlockBarrier, -1);
    if (b.at_warp[warp] > 0 && b.at_warp[warp] == b.warp_live[warp])
        release(State::AtWarpBarrier, warp);
}

void wait_at(State barrier) {
    Block& b = *tl_block;
    Fiber* f = b.current;
    f->state = barrier;
    if (barrier == State::AtBlockBarrier)
        b.at_block++;
    else
        b.at_warp[f->warp]++;
    release_complete(f->warp);
    if (f->state != State::Ready) swapcontext(&f->context, &b.scheduler);
}

void fiber_main() {
    Block& b = *tl_block;
    b.body(b.ctx);
    Fiber* f = b.current;
    f->state = State::Done;
    b.live--;
    b.warp_live[f->warp]--;
    release_complete(f->warp);
    swapcontext(&f->context, &b.scheduler);
}

/// Runs every thread of the block to its end; false when some wait at a
/// barrier that the others will never reach.
bool run_block(Block& b) {
    unsigned n = b.bdim.x * b.bdim.y * b.bdim.z;
    int warps = (int)((n + LANES - 1) / LANES);
    b.fibers.assign(n, Fiber{});
    b.live = n;
    b.at_block = 0;
    b.warp_live.assign(warps, 0);
    b.at_warp.assign(warps, 0);
    b.exchange.assign((size_t)warps * LANES, 0);
    if (tl_stacks.size() < n) tl_stacks.resize(n);
    for (unsigned i = 0; i < n; i++) {
        Fiber& f = b.fibers[i];
        f.tid = uint3{i % b.bdim.x, (i / b.bdim.x) % b.bdim.y, i / (b.bdim.x * b.bdim.y)};
        f.warp = (int)(i / LANES);
        f.lane = (int)(i % LANES);
        f.state = State::Ready;
        b.warp_live[f.warp]++;
        if (tl_stacks[i].empty()) tl_stacks[i].resize(STACK_BYTES);
        getcontext(&f.context);
        f.context.uc_stack.ss_sp = tl_stacks[i].data();
        f.context.uc_stack.ss_size = STACK_BYTES;
        f.context.uc_link = nullptr;
        makecontext(&f.context, fiber_main, 0);
    }
    while (b.live > 0) {
        bool progressed = false;
        for (Fiber& f : b.fibers) {
            if (f.state != State::Ready) continue;
            b.current = &f;
            swapcontext(&b.scheduler, &f.context);
            progressed = true;
        }
        if (!progressed) return false;
    }
    return true;
}

}  // namespace

const uint3& thread_idx() { return tl_block->current->tid; }
const uint3& block_idx() { return tl_block->bid; }
const uint3& block_dim() { return tl_block->bdim; }
const uint3& grid_dim() { return tl_block->gdim; }
void* dynamic_shared() { return tl_block->shared.data(); }
int lane_id() { return tl_block->current->lane; }
void sync_block() { wait_at(State::AtBlockBarrier); }
void sync_warp() { wait_at(State::AtWarpBarrier); }

void warp_exchange(const void* value, void* out, size_t bytes, int src) {
    Block& b = *tl_block;
    Fiber* f = b.current;
    uint64_t* slots = &b.exchange[(size_t)f->warp * LANES];
    memcpy(&slots[f->lane], value, bytes);
    sync_warp();
    unsigned n = (unsigned)b.fibers.size();
    if (src >= 0 && src < LANES && (unsigned)(f->warp * LANES + src) < n)
        memcpy(out, &slots[src], bytes);
    sync_warp();
}

int run(const Launch& launch, void (*body)(void*), void* ctx) {
    const unsigned* g = launch.grid;
    const unsigned* d = launch.block;
    unsigned long long threads = (unsigned long long)d[0] * d[1] * d[2];
    if (threads == 0 || threads > MAX_THREADS || d[2] > 64 || g[0] == 0 || g[1] == 0 ||
        g[2] == 0 || g[1] > 65535 || g[2] > 65535 || launch.shared_bytes > MAX_SHARED_BYTES)
        return BAD_CONFIG;
    Block block;
    block.bdim = uint3{d[0], d[1], d[2]};
    block.gdim = uint3{g[0], g[1], g[2]};
    block.body = body;
    block.ctx = ctx;
    block.shared.assign(launch.shared_bytes, 0);
    Block* outer = tl_block;
    tl_block = &block;
    int status = OK;
    for (unsigned z = 0; z < g[2] && status == OK; z++)
        for (unsigned y = 0; y < g[1] && status == OK; y++)
            for (unsigned x = 0; x < g[0] && status == OK; x++) {
                block.bid = uint3{x, y, z};
                if (!run_block(block)) status = DIVERGENT_BARRIER;
            }
    tl_block = outer;
    return status;
}

}  // namespace emu
