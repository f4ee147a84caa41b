// The process table, creation and teardown (see process.hpp).
#include "proc/process.hpp"

#include "core/lab.hpp"
#include "core/panic.hpp"
#include "core/stop.hpp"
#include "lib/facts.hpp"
#include "mm/space/fork_copy.hpp"
#include "mm/heap_allocator.hpp"
#include "mm/pt/table_iterator.hpp"
#include "mm/vm.hpp"
#include "proc/loader.hpp"
#include "proc/run.hpp"
#include "proc/scheduler.hpp"

namespace pagoda::proc {

// What lab 6's grader reads of a process besides its record (the facts at the end of this
// file): who its parent is, how it ended, which state is a zombie (grade/pagoda_grade/lifecycle.py).
PAGODA_FACT(process_parent, offsetof(Process, parent))
PAGODA_FACT(process_exit, offsetof(Process, exit))
PAGODA_FACT(process_state_zombie, u64(State::Zombie))
PAGODA_FACT(process_state_waiting, u64(State::Waiting))
// And what its process audit reads (grade/pagoda_grade/procaudit.py): which states are Ready and
// Running, and which kernel-stack slot a process holds (its saved user frame is at that stack's top).
PAGODA_FACT(process_state_ready, u64(State::Ready))
PAGODA_FACT(process_state_running, u64(State::Running))
PAGODA_FACT(process_kstack_slot, offsetof(Process, kstack) + offsetof(KernelStack, slot))
// And which state is Sleeping, for the idle watch (grade/pagoda_grade/idle.py): a process reading
// the console sleeps a tick at a time.
PAGODA_FACT(process_state_sleeping, u64(State::Sleeping))
// And the Error a Result<Process*> holds (fork_process()'s, read at its return): the union of the
// value and the Error first, then whether it holds the value.
PAGODA_FACT(error_code, offsetof(Error, code))
PAGODA_FACT(error_file, offsetof(Error, file))
PAGODA_FACT(error_line, offsetof(Error, line))
PAGODA_FACT(error_message, offsetof(Error, message))
PAGODA_FACT(result_pointer_ok, sizeof(Error) > sizeof(Process*) ? sizeof(Error) : sizeof(Process*))

namespace {

/// Made at compile time and never destroyed (the kernel does not end; a slot's end is release()).
[[clang::no_destroy]] constinit Process g_processes[kMaxProcesses];
u32 g_next_pid = 1;
/// fork=eager (boot option): fork copies every page, the baseline copy-on-write is measured against.
bool g_eager_fork = false;

/// Makes @p p a Free slot again, every field as a new slot has it. Whatever its Optionals still
/// hold ends here (~Process); release() ends them first, in the order the teardown needs.
void clear_slot(Process& p) {
  p.~Process();
  construct_at(&p);
}

/// Gives back what create_process made of @p p so far (any order of failure), the slot last.
void release(Process& p) {
  // LAB 3 BEGIN give back a process's memory: the user half, its tables and root, the kernel stack
  // The user half first (every page and its frame; the tables its unmaps leave empty go with
  // them), then the space itself (reset(): ~AddressSpace frees the tables of the user half that
  // are left, then the root), then the record of the user half, then the kernel stack: it is not
  // in use (the process is not running), and nothing of the user half refers to it.
  if (p.has_space()) {
    usize pages = 0;
    const Result<void> freed = free_user_half(p.space(), pages);
    if (freed.is_error()) {
      // A lab skeleton: the user pages stay allocated (the frame counts will say so).
      println("proc {} ({}): the user half was not freed: {}", p.pid, p.name_view(), freed.error());
    }
  }
  p.address_space.reset();
  p.user_regions.reset();
  destroy_kernel_stack(p.kstack);
  // LAB 3 SKELETON
  // panic("lab 3: write release() in kernel/proc/process.cpp (labs/03-process-roots/README.md)");
  // LAB 3 END
  clear_slot(p);
}

void set_name(Process& p, StringView name) {
  const usize n = min(name.size(), sizeof p.name - 1);
  for (usize i = 0; i < n; ++i) p.name[i] = name[i];
  p.name[n] = '\0';
}

/// A Free slot with a new pid and @p name; Overflow when the table is full.
Result<Process*> take_slot(StringView name) {
  for (Process& p : g_processes)
    if (p.state == State::Free && !p.has_space() && !p.kstack.valid()) {
      p.pid = g_next_pid++;
      set_name(p, name);
      if (const Process* maker = current()) p.cpu = maker->cpu;  // (two CPUs: where its maker runs)
      return &p;
    }
  return Error(Error::Overflow, "the process table is full");
}

/// Gives @p p a fresh user space and an empty record of it (the caller releases @p p on error).
/// Its callers are lab 3's and lab 6's regions: on a tree where both are skeletons, nothing calls it.
[[maybe_unused]] Result<void> make_space(Process& p) {
  Result<AddressSpace> space = AddressSpace::create_user(vm::kernel_space());
  if (space.is_error()) return space.error();
  AddressSpace& made = p.address_space.emplace(space.release_value());
  made.name_for_debugging(p.name_view(), p.pid);
  made.set_regions(&p.user_regions.emplace(heap::frame_granular_allocator(), kPageSize));
  return {};
}

}  // namespace

const char* state_name(State state) {
  switch (state) {
    case State::Free: return "free";
    case State::Ready: return "ready";
    case State::Running: return "running";
    case State::Sleeping: return "sleeping";
    case State::Zombie: return "zombie";
    case State::Waiting: return "waiting";
  }
  return "?";
}

Span<Process> process_table() { return {g_processes, kMaxProcesses}; }

Process* find_process(u32 pid) {
  for (Process& p : g_processes)
    if (p.state != State::Free && p.pid == pid) return &p;
  return nullptr;
}

[[PAGODA_STOP(create_process)]] Result<Process*> create_process(StringView name, Span<const u8> image,
                                                                Span<const StringView> args) {
  Process& p = *TRY(take_slot(name));
  // LAB 3 BEGIN a root of its own with the program loaded, a kernel stack, and its first frame
  // In the order that lets each failure give back exactly what was made (release()).
  if (Result<void> made = make_space(p); made.is_error()) {
    release(p);
    return made.error();
  }
  const Result<arch::UserEntry> entry = load_program(p.space(), p.regions(), image, args);
  if (entry.is_error()) {
    const Error e = entry.error();
    release(p);
    return e;
  }
  Result<KernelStack> stack = create_kernel_stack();
  if (stack.is_error()) {
    const Error e = stack.error();
    release(p);
    return e;
  }
  p.kstack = stack.value();
  // The first switch to it "returns" through this frame into user mode at the ELF's entry.
  p.saved_sp = arch::prepare_user_entry(p.kstack.top().value(), entry.value());
  p.state = State::Ready;
  return &p;
  // LAB 3 SKELETON
  // (void)p;
  // (void)image;
  // (void)args;
  // return Error(Error::NotImplemented, "lab 3: write create_process() in kernel/proc/process.cpp "
  //                                     "(labs/03-process-roots/README.md)");
  // LAB 3 END
}

// (Never inlined: the grader stops at its entry, where a teardown begins.)
[[PAGODA_STOP(destroy_process)]] void destroy_process(Process& p) {
  if (p.state == State::Running || &p == current()) panic("destroying process {} while it runs", p.pid);
  if (p.has_space()) p.space().leave_if_lazy();  // (lab 8: a root this CPU kept only while idle)
  if (p.has_space() && p.space().is_live())
    panic("destroying process {} while its root is live{}", p.pid,
          current() == nullptr ? (cpus_online() > 1 ? ": the idle loop kept it (lazy TLB): AddressSpace::leave_lazy() "
                                                      "must load the kernel's root before the space ends"
                                                    : ": the idle loop still runs on it (switch_to() must load the "
                                                      "kernel's root when it switches to the idle loop)")
                               : "");
  release(p);
}

Result<void> copy_record(const UserRegions& from, UserRegions& to) {
  // LAB 6 BEGIN copy a record of regions: every VMA, then the stack's and the heap's bounds
  // The VMA set first: it is the only step that can fail (NoMemory), and it leaves @p to as it
  // was when it does, so the caller may still use it.
  TRY(to.vmas.copy_from(from.vmas));
  to.stack_limit = from.stack_limit;
  to.stack_gap = from.stack_gap;
  to.heap_start = from.heap_start;
  to.brk = from.brk;
  return {};
  // LAB 6 SKELETON
  // (void)from;
  // (void)to;
  // return Error(Error::NotImplemented, "lab 6: write copy_record() in kernel/proc/process.cpp "
  //                                     "(labs/06-fork/README.md)");
  // LAB 6 END
}

[[PAGODA_STOP(fork_process)]] Result<Process*> fork_process(Process& parent) {
  // LAB 6 BEGIN fork: a child whose record and user half are copies of the parent's, returning 0
  // The child is made in the order create_process() makes a process, and undone by release()
  // on any failure: a slot (its pid), a root that shares the kernel half with an empty record,
  // the record copied, the user half copied *by the child's record* (now the same regions as
  // the parent's: copying by a record still empty would copy nothing), a kernel stack. The
  // caller is the parent: it reaps the child with wait().
  Process& child = *TRY(take_slot(parent.name_view()));
  child.parent = parent.pid;
  Result<void> done = make_space(child);
  if (done.ok()) done = copy_record(parent.regions(), child.regions());
  if (done.ok()) done = copy_user_half(parent.space(), child.regions().vmas, child.space());
  if (done.ok()) {
    Result<KernelStack> stack = create_kernel_stack();
    if (stack.ok()) child.kstack = stack.value();
    else done = stack.error();
  }
  if (done.is_error()) {
    release(child);
    return done.error();
  }
  // The first switch to the child returns through a copy of the parent's system-call frame,
  // with result 0 (arch::prepare_fork_return()); it runs once the scheduler picks it.
  child.saved_sp = arch::prepare_fork_return(child.kstack.top().value(), parent.kstack.top().value());
  child.state = State::Ready;
  return &child;
  // LAB 6 SKELETON
  // (void)parent;
  // return Error(Error::NotImplemented, "lab 6: write fork_process() in kernel/proc/process.cpp "
  //                                     "(labs/06-fork/README.md)");
  // LAB 6 END
}

void configure_fork(StringView mode) {
  if (mode == "eager") g_eager_fork = true;
  else if (mode == "cow") g_eager_fork = false;
  else println("proc: fork={}: not 'eager' or 'cow'; fork stays {}", mode, g_eager_fork ? "eager" : "copy-on-write");
  if (g_eager_fork) println("proc: fork=eager: fork copies every mapped user page (the baseline of bench fork)");
}

bool eager_fork() { return g_eager_fork; }

namespace {

/// @p e from copying a user half into the fresh space @p to, with the step; a page the child
/// already maps (asked of @p to itself) is named for what it means: the child's root was empty,
/// so the walk visited the page twice.
Error copy_refused(const Error& e, AddressSpace& to) {
  const Error stepped = e.during("copying the parent's pages into the child's root, at page");
  if (!e.has_address || !to.query(VirtAddr(e.address).align_down(kPageSize)).mapped()) return stepped;
  return stepped.noted(
      "the child already maps that page, and its root held nothing when the copy began: the copy "
      "wrote that page twice (a walk that runs past a region's end reaches the next region's pages; a child "
      "cursor not moved to each page maps them all at one address)");
}

}  // namespace

Result<void> copy_user_half(AddressSpace& from, const VmaSet& vmas, AddressSpace& to) {
  if (g_eager_fork) {
    // Lab 7: a frame for every page the parent has resident, under the cap, before the copy.
    if (vm::swap_enabled()) TRY(vm::make_user_room(count_user_frames(from).pages));
    const Result<void> copied = copy_pages(from, vmas, to);
    if (copied.is_error()) return copy_refused(copied.error(), to);
    return vm::note_forked(from, vmas, to);  // lab 7: the child's pages and swap entries
  }
  Result<void> shared = share_pages(from, vmas, to);
  if (shared.is_error() && shared.error() == Error::NotImplemented) {
    // Lab 6, before copy-on-write is written: the eager copy stands in for it (it changed nothing).
    lab_todo(shared.error(), "the eager copy stands in for copy-on-write");
    shared = copy_pages(from, vmas, to);
  }
  if (shared.is_error()) return copy_refused(shared.error(), to);
  return vm::note_forked(from, vmas, to);  // lab 7: the child's pages and swap entries
}

Result<void> copy_pages(AddressSpace& from, const VmaSet& vmas, AddressSpace& to) {
  // LAB 6 BEGIN copy the user half, region by region
  // The record says what the user half holds: for each region, copy_mappings() visits every
  // page the parent maps there (a leaf table at a time; what was never touched is skipped a
  // whole entry at a time) and makes the child's tables; each page gets a frame of its own in
  // the child, filled through temporary mappings (neither root needs to be live: the child's
  // is not), mapped with the parent's permissions. The parent is only read: a read cursor, which
  // cannot change it and needs no batch.
  ConsistencyBatch child_changes = to.batch();
  AddressSpace::ReadCursor parent = from.read_cursor(VirtAddr(0));
  AddressSpace::Cursor child = to.cursor(child_changes, VirtAddr(0));
  for (const Vma& vma : vmas) {
    TRY(copy_mappings(parent, child, VirtAddr(vma.start), VirtAddr(vma.end), [](auto& page) -> Result<void> {
      const PhysAddr frame = TRY(vm::allocate_user_frame());
      vm::copy_frame(frame, page.frame());
      page.map_copy(frame);
      return {};
    }));
  }
  return {};
  // LAB 6 SKELETON
  // (void)from;
  // (void)vmas;
  // (void)to;
  // return Error(Error::NotImplemented, "lab 6: write copy_pages() in kernel/proc/process.cpp "
  //                                     "(labs/06-fork/README.md)");
  // LAB 6 END
}

Result<void> share_pages(AddressSpace& from, const VmaSet& vmas, AddressSpace& to) {
  // LAB 6 BEGIN share the user half copy-on-write, region by region
  // Every mapped page of every region: one more reference to its frame, the same frame mapped
  // in the child, and both mappings without write permission (page.share(); the parent's
  // entries are invalidated through its batch, once for the whole fork: its root is live). A
  // write fault on either side then finds a writable region over a read-only page whose frame
  // is shared, and copies it (vm::handle_fault). Read-only pages are shared the same way and
  // stay shared. The tables are never shared: the child gets its own.
  ConsistencyBatch parent_changes = from.batch();  // the parent's entries made read-only
  ConsistencyBatch child_changes = to.batch();
  AddressSpace::Cursor parent = from.cursor(parent_changes, VirtAddr(0));
  AddressSpace::Cursor child = to.cursor(child_changes, VirtAddr(0));
  FrameRefs& refs = vm::frame_refs();
  for (const Vma& vma : vmas) {
    TRY(copy_mappings(parent, child, VirtAddr(vma.start), VirtAddr(vma.end), [&refs](auto& page) -> Result<void> {
      TRY(refs.share(page.frame()));
      page.share();
      return {};
    }));
  }
  return {};
  // LAB 6 SKELETON
  // (void)from;
  // (void)vmas;
  // (void)to;
  // return Error(Error::NotImplemented, "lab 6: write share_pages() in kernel/proc/process.cpp "
  //                                     "(labs/06-fork/README.md)");
  // LAB 6 END
}

[[PAGODA_STOP(exec_current)]] Result<arch::UserEntry> exec_current(Process& p, StringView name, Span<const u8> image,
                                                                   Span<const StringView> args) {
  // LAB 6 BEGIN exec: a new space loaded beside the old one, then the switch, then the old one freed
  // The new space is made and loaded while the old root stays live (the loader writes the new
  // one through temporary mappings: load_program(), labs 4 and 5), so that any failure drops
  // the new space and returns with the old one untouched. The new space and its record live on
  // this stack: the commit moves the space into the process; what is left of them here (the
  // record, a moved-from space that owns nothing, or on failure the new space's tables and root)
  // ends with this function.
  Result<AddressSpace> made = AddressSpace::create_user(vm::kernel_space());
  if (made.is_error()) return made.error();
  AddressSpace space = made.release_value();
  UserRegions regions(heap::frame_granular_allocator(), kPageSize);
  space.set_regions(&regions);
  const auto drop_new = [&] {  // its user pages: ~AddressSpace frees only tables
    usize pages = 0;
    (void)free_user_half(space, pages);
  };
  const Result<arch::UserEntry> entry = load_program(space, regions, image, args);
  if (entry.is_error()) {
    drop_new();
    return entry.error();
  }
  // The last step that can fail: the process's record takes the new regions (NoMemory leaves
  // it unchanged). From here on nothing fails.
  if (Result<void> copied = copy_record(regions, p.regions()); copied.is_error()) {
    drop_new();
    return copied.error();
  }
  // Commit. The new root goes live first: the old one may be freed only once the CPU no longer
  // translates through it (freeing the live root is freeing the tables under the CPU's feet).
  space.name_for_debugging(name, p.pid);
  space.set_regions(&p.regions());
  space.activate();
  usize pages = 0;
  if (Result<void> freed = free_user_half(p.space(), pages); freed.is_error())
    println("proc {} ({}): exec: the old user half was not freed: {}", p.pid, p.name_view(), freed.error());
  p.address_space.reset();               // the old root and the tables of its user half; withdrawn from the registry
  p.address_space.emplace(move(space));  // the new one; the local is left owning nothing
  vm::set_current_space(&p.space());
  set_name(p, name);
  // The system call returns into the new program's entry, not to its caller.
  arch::restart_user_entry(p.kstack.top().value(), entry.value());
  return entry.value();
  // LAB 6 SKELETON
  // (void)p;
  // (void)name;
  // (void)image;
  // (void)args;
  // return Error(Error::NotImplemented, "lab 6: write exec_current() in kernel/proc/process.cpp "
  //                                     "(labs/06-fork/README.md)");
  // LAB 6 END
}

abi::ExitInfo reap(Process& p) {
  const u32 pid = p.pid;
  char name[sizeof p.name];
  for (usize i = 0; i < sizeof name; ++i) name[i] = p.name[i];
  const abi::ExitInfo exit = p.exit;
  destroy_process(p);
  if (!lifecycle_log()) return exit;
  if (exit.how == u32(abi::Termination::Exited))
    println("proc {} ({}): reaped: exited with code {}", pid, StringView(name), exit.code);
  else
    println("proc {} ({}): reaped: killed ({})", pid, StringView(name),
            abi::termination_name(abi::Termination(exit.how)));
  return exit;
}

Result<u32> wait_for_child(Process& p, i64 pid, abi::ExitInfo& info, bool no_hang) {
  // LAB 6 BEGIN wait: reap a child that has ended, or sleep until one does
  // A child of @p p is any process whose parent is p's pid (fork and spawn set it; exit hands
  // orphans to the first process). A zombie among the ones asked for is reaped here: its status
  // is what it ended with, and reap() frees all it still holds (user half, tables, root, kernel
  // stack, slot). Otherwise p sleeps (Waiting) until the exit of a child makes it Ready, then
  // searches again from the start (what it was woken for may have changed meanwhile).
  for (;;) {
    bool any = false;
    for (Process& q : process_table()) {
      if (q.state == State::Free || q.parent != p.pid || (pid != -1 && i64(q.pid) != pid)) continue;
      any = true;
      if (q.state != State::Zombie) continue;
      const u32 id = q.pid;
      info = reap(q);
      return id;
    }
    if (!any) return Error(pid == -1 ? Error::NotFound : Error::InvalidArgument, "no such child");
    if (no_hang) return 0u;
    p.state = State::Waiting;  // exit_current() of a child makes it Ready again
    schedule();
  }
  // LAB 6 SKELETON
  // (void)p;
  // (void)pid;
  // (void)info;
  // (void)no_hang;
  // return Error(Error::NotImplemented, "lab 6: write wait_for_child() in kernel/proc/process.cpp "
  //                                     "(labs/06-fork/README.md)");
  // LAB 6 END
}

Result<void> free_user_half(AddressSpace& space, usize& pages) {
  pages = 0;
  // Lab 7: the swapped-out pages' slots given back, the mapped pages forgotten by the reverse map.
  TRY(vm::forget_user_pages(space, VirtAddr(0), VirtAddr(arch::UserSpace::kEnd)));
  return free_user_pages(space, VirtAddr(0), VirtAddr(arch::UserSpace::kEnd), pages);
}

Result<void> free_user_pages(AddressSpace& space, VirtAddr start, VirtAddr end, usize& pages) {
  pages = 0;
  // LAB 3 BEGIN free every page of [start, end) of the user half, and its frame
  // One cursor over the range: next_mapped() skips empty ranges a whole entry at a time;
  // each unmap frees the tables it leaves empty, and the frame goes to the batch, which gives it
  // back (vm::put_user_frame: lab 6's copy-on-write shares frames) only after its flush, so that
  // no TLB still reaches it when it is reused: one flush for the whole range.
  ConsistencyBatch batch = space.batch();
  for (AddressSpace::Cursor c = space.cursor(batch, start); c.next_mapped(end);) {
    batch.release_frame(TRY(c.unmap()));
    ++pages;
    c.find(c.va().offset(kPageSize));
  }
  return {};
  // LAB 3 SKELETON
  // (void)space;
  // (void)start;
  // (void)end;
  // return Error(Error::NotImplemented, "lab 3: write free_user_pages() in kernel/proc/process.cpp "
  //                                     "(labs/03-process-roots/README.md)");
  // LAB 3 END
}

bool check_vmas(Process& p, FormatSink* report, usize* mapped_pages) {
  if (!p.has_space() || !p.has_regions()) return true;
  return check_coverage(p.space(), p.regions().vmas, arch::UserSpace::kEnd, report, mapped_pages);
}

UserFrames count_user_frames(AddressSpace& space) {
  UserFrames out;
  const VirtAddr end(arch::UserSpace::kEnd);
  for (AddressSpace::ReadCursor c = space.read_cursor(VirtAddr(0)); c.next_mapped(end); c.next()) ++out.pages;
  const AddressSpace::Tree& tree = space.arch().tree_for(VirtAddr(0));
  const usize user_end = arch::PageTableFormat::index(VirtAddr(layout::kKernelHalfBase), 0);
  out.tables = 1;  // the root
  for (TableIterator<arch::PageTableFormat> it(tree, 0,
                                               user_end == 0 ? arch::PageTableFormat::kEntriesPerTable : user_end);
       !it.done(); it.next())
    ++out.tables;
  return out;
}

}  // namespace pagoda::proc

// ---- What the grader reads of every process's record (grade/pagoda_grade/vmas.py) -------------

namespace pagoda {

/// Where a UserRegions keeps its VMA set's array and its heap (a friend of VmaSet), for the facts
/// below.
struct VmaSetLayout {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"  // VmaSet holds a reference: not standard layout
  static constexpr usize data = offsetof(VmaSet, data_);
  static constexpr usize size = offsetof(VmaSet, size_);
  static constexpr usize vmas = offsetof(UserRegions, vmas);
  static constexpr usize heap_start = offsetof(UserRegions, heap_start);
  static constexpr usize brk = offsetof(UserRegions, brk);
  static constexpr usize stack_limit = offsetof(UserRegions, stack_limit);
  static constexpr usize stack_gap = offsetof(UserRegions, stack_gap);
#pragma GCC diagnostic pop
};

}  // namespace pagoda

namespace pagoda::proc {
namespace {

// The process table (g_processes) slot by slot, each slot's record (UserRegions: its VMA set's
// sorted array and length, the heap), and one Vma: the grader reads a process's VMAs from guest
// RAM with these, to name what a loader or a memory call recorded (or did not).
PAGODA_FACT(process_count, kMaxProcesses)
PAGODA_FACT(process_stride, sizeof(Process))
PAGODA_FACT(process_pid, offsetof(Process, pid))
PAGODA_FACT(process_state, offsetof(Process, state))
PAGODA_FACT(process_name, offsetof(Process, name))
PAGODA_FACT(process_name_size, sizeof(Process::name))
PAGODA_FACT(process_regions, offsetof(Process, user_regions) + Optional<UserRegions>::value_offset())
PAGODA_FACT(process_regions_made, offsetof(Process, user_regions) + Optional<UserRegions>::engaged_offset())
PAGODA_FACT(regions_vmas_data, VmaSetLayout::vmas + VmaSetLayout::data)
PAGODA_FACT(regions_vmas_size, VmaSetLayout::vmas + VmaSetLayout::size)
PAGODA_FACT(regions_heap_start, VmaSetLayout::heap_start)
PAGODA_FACT(regions_brk, VmaSetLayout::brk)
PAGODA_FACT(regions_stack_limit, VmaSetLayout::stack_limit)
PAGODA_FACT(regions_stack_gap, VmaSetLayout::stack_gap)
PAGODA_FACT(vma_stride, sizeof(Vma))
PAGODA_FACT(vma_start, offsetof(Vma, start))
PAGODA_FACT(vma_end, offsetof(Vma, end))
PAGODA_FACT(vma_read, offsetof(Vma, perms) + offsetof(Perms, read))
PAGODA_FACT(vma_write, offsetof(Vma, perms) + offsetof(Perms, write))
PAGODA_FACT(vma_execute, offsetof(Vma, perms) + offsetof(Perms, execute))
PAGODA_FACT(vma_kind, offsetof(Vma, kind))
PAGODA_FACT(vma_flags, offsetof(Vma, flags))
PAGODA_FACT(vma_source, offsetof(Vma, source))
PAGODA_FACT(vma_offset, offsetof(Vma, offset))
PAGODA_FACT(vma_file_size, offsetof(Vma, file_size))

}  // namespace
}  // namespace pagoda::proc
