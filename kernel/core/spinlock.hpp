/// @file spinlock.hpp
/// @brief A spinlock, and the guard that holds it with this CPU's interrupts off.
///
/// A lock an interrupt handler may also take must be held with interrupts off, or the handler
/// spins on its own CPU's lock forever: SpinGuard turns them off before it takes the lock and
/// puts them back as they were after it lets go. Every turn of the wait relaxes (arch::cpu_relax).
#pragma once

#include "core/arch.hpp"

namespace pagoda {

class SpinLock {
 public:
  /// Takes the lock, waiting (relaxing) while another CPU holds it. Not reentrant.
  void lock() {
    while (__atomic_exchange_n(&held_, true, __ATOMIC_ACQUIRE))
      while (__atomic_load_n(&held_, __ATOMIC_RELAXED)) arch::cpu_relax();
  }
  /// Takes the lock when it is free; false (and nothing taken) otherwise.
  bool try_lock() { return !__atomic_exchange_n(&held_, true, __ATOMIC_ACQUIRE); }
  /// Lets the lock go; only its holder may. Every write made under it is seen by the next holder.
  void unlock() { __atomic_store_n(&held_, false, __ATOMIC_RELEASE); }
  /// Whether some CPU holds it now (for assertions; stale as soon as it is read).
  bool held() const { return __atomic_load_n(&held_, __ATOMIC_RELAXED); }

 private:
  bool held_ = false;
};

/// Holds @p lock for the guard's lifetime with this CPU's interrupts off, restoring them after.
class [[nodiscard]] SpinGuard {
 public:
  explicit SpinGuard(SpinLock& lock) : lock_(lock), interrupts_(arch::interrupts_save()) { lock_.lock(); }
  ~SpinGuard() {
    lock_.unlock();
    arch::interrupts_restore(interrupts_);
  }
  SpinGuard(const SpinGuard&) = delete;
  SpinGuard& operator=(const SpinGuard&) = delete;

 private:
  SpinLock& lock_;
  bool interrupts_;
};

}  // namespace pagoda
