//! The blocking face of every lock shape, for code without async.
//!
//! Each shape you acquire from has a twin here with the same methods minus
//! `.await`, named as the async type without `Async`; its guard is the
//! async guard's name without `Async`:
//!
//! | async | blocking |
//! |---|---|
//! | [`AsyncLock`](crate::AsyncLock), [`AsyncLockGuard`](crate::AsyncLockGuard), [`AsyncTicket`](crate::AsyncTicket) | [`Lock`], [`LockGuard`], [`Ticket`] |
//! | [`AsyncSemaphore`](crate::AsyncSemaphore) (permits are [`AsyncLockGuard`](crate::AsyncLockGuard)s) | [`Semaphore`] (permits are [`LockGuard`]s) |
//! | [`AsyncMultiLock`](crate::AsyncMultiLock), [`AsyncMultiLockGuard`](crate::AsyncMultiLockGuard) | [`MultiLock`], [`MultiLockGuard`] |
//! | [`AsyncReentrantLock`](crate::AsyncReentrantLock), [`AsyncReentrantGuard`](crate::AsyncReentrantGuard) | [`ReentrantLock`], [`ReentrantGuard`] |
//! | [`AsyncRwLock`](crate::AsyncRwLock), [`AsyncReadGuard`](crate::AsyncReadGuard), [`AsyncWriteGuard`](crate::AsyncWriteGuard) | [`RwLock`], [`ReadGuard`], [`WriteGuard`] |
//!
//! # How blocking calls run
//!
//! Every blocking call hands its work to one background runtime that
//! shylock starts on first use (a single worker thread named
//! `shylock-runtime`, see [`background_runtime`](crate::background_runtime))
//! and waits for the answer on a plain channel. That works from plain
//! threads, from `tokio::task::spawn_blocking`, and never nests one runtime
//! inside another. Renewal of blocking guards runs there too, so the caller
//! needs no runtime at all.
//!
//! Called from async code (inside a tokio task), a blocking method neither
//! panics nor deadlocks, but it blocks the worker thread it runs on for the
//! whole wait, stalling every other task of that thread (all of them on a
//! `current_thread` runtime). From async code use the async types, or wrap
//! the call in `tokio::task::spawn_blocking`.
//!
//! # A twin type or blocking methods
//!
//! A shape you acquire from (a lock, a semaphore, a set of locks, a
//! reentrant lock) gets a twin type here: its methods all block, and its
//! guard releases on drop before `drop` returns. A handle that lives for
//! the life of a background task gets `*_blocking` methods on the one type
//! instead, as tokio's channels have `blocking_recv`: the
//! [`Campaign`](crate::Campaign) of an [`Election`](crate::Election)
//! contends on its own from the start, so a blocking program calls
//! [`wait_until_leader_blocking`](crate::Campaign::wait_until_leader_blocking)
//! and [`step_down_blocking`](crate::Campaign::step_down_blocking) on it;
//! the shutdown hook is [`release_all_blocking`](crate::release_all_blocking)
//! beside [`release_all`](crate::release_all).
//!
//! # Examples
//!
//! ```
//! # extern crate shylock_core as shylock;
//! use shylock::blocking::{Lock, Semaphore};
//! use shylock::MemoryBackend;
//!
//! let backend = MemoryBackend::new();
//! let guard = Lock::with_backend("nightly-job", backend.clone()).acquire()?;
//! let permit = Semaphore::with_backend("exports", 2, backend).acquire()?;
//! permit.release()?;
//! guard.release()?;
//! # Ok::<(), shylock::Error>(())
//! ```

use crate::backend::{LockInfo, RwLockInfo, SemaphoreInfo};

mod lock;
mod multi;
mod reentrant;
mod rwlock;
mod semaphore;

pub use lock::{Lock, LockGuard, Ticket};
pub use multi::{MultiLock, MultiLockGuard};
pub use reentrant::{ReentrantGuard, ReentrantLock};
pub use rwlock::{ReadGuard, RwLock, WriteGuard};
pub use semaphore::Semaphore;

/// What an async method's answer becomes in its blocking twin: a guard or
/// a ticket becomes its blocking type, plain values stay as they are.
///
/// `From` cannot say this for `Option<guard>`, which is why the twins use
/// their own trait.
pub(crate) trait FromAsync<A> {
    fn from_async(answer: A) -> Self;
}

impl<A, B: FromAsync<A>> FromAsync<Option<A>> for Option<B> {
    fn from_async(answer: Option<A>) -> Self {
        answer.map(B::from_async)
    }
}

macro_rules! plain_answers {
    ($($plain:ty),*) => {$(
        impl FromAsync<$plain> for $plain {
            fn from_async(answer: $plain) -> Self {
                answer
            }
        }
    )*};
}

plain_answers!(bool, u32, LockInfo, SemaphoreInfo, RwLockInfo);

/// Writes the blocking twin of an async shape: the struct (holding the
/// async one), `new` and `with_backend` with the arguments given,
/// `with_options`, `as_async`, the listed accessors (`get`, forwarded as
/// they are) and the listed methods (`run`, each run on the background
/// runtime, its answer turned into the blocking type by [`FromAsync`]).
/// Methods whose arguments borrow are written by hand beside it.
macro_rules! blocking_twin {
    (
        $(#[$meta:meta])*
        pub struct $name:ident($async:ident);
        fn new $(<$g:ident: $g_bound:path>)? ($($new_arg:ident: $new_ty:ty),* $(,)?);
        fn with_backend $(<$wb:ident: $wb_bound:path>)? ($($wb_arg:ident: $wb_ty:ty),* $(,)?);
        get {$(
            $(#[$get_meta:meta])*
            fn $get:ident -> $get_out:ty;
        )*}
        run {$(
            $(#[$run_meta:meta])*
            fn $method:ident($($arg:ident: $arg_ty:ty),* $(,)?) -> $out:ty;
        )*}
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        pub struct $name {
            inner: $async,
        }

        impl $name {
            #[doc = concat!("See [`", stringify!($async), "::new`].")]
            pub fn new $(<$g: $g_bound>)? ($($new_arg: $new_ty),*) -> Self {
                $name {
                    inner: $async::new($($new_arg),*),
                }
            }

            #[doc = concat!("See [`", stringify!($async), "::with_backend`].")]
            pub fn with_backend $(<$wb: $wb_bound>)? ($($wb_arg: $wb_ty),*) -> Self {
                $name {
                    inner: $async::with_backend($($wb_arg),*),
                }
            }

            #[doc = concat!("See [`", stringify!($async), "::with_options`].")]
            pub fn with_options(self, options: $crate::options::LockOptions) -> Self {
                $name {
                    inner: self.inner.with_options(options),
                }
            }

            #[doc = concat!("The [`", stringify!($async), "`] behind this one.")]
            pub fn as_async(&self) -> &$async {
                &self.inner
            }

            $(
                $(#[$get_meta])*
                pub fn $get(&self) -> $get_out {
                    self.inner.$get()
                }
            )*

            $(
                $(#[$run_meta])*
                pub fn $method(&self, $($arg: $arg_ty),*) -> $crate::error::Result<$out> {
                    let inner = self.inner.clone();
                    $crate::runtime::run(stringify!($method), async move {
                        inner.$method($($arg),*).await
                    })
                    .map($crate::blocking::FromAsync::from_async)
                }
            )*
        }
    };
}

pub(crate) use blocking_twin;
