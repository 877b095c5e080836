//! Functions of 0 to 16 injectable parameters are component factories.

use std::sync::Arc;

use crate::context::Resolver;
use crate::error::BoxError;
use crate::inject::{Dependency, Injectable};

/// What a component function may return: `Arc<T>` or `Result<Arc<T>, E>`.
pub trait IntoComponent {
    /// The provided type (`Foo` or `dyn Trait`).
    type Output: ?Sized + Send + Sync + 'static;
    /// Converts into the shared value or a boxed error.
    fn into_component(self) -> Result<Arc<Self::Output>, BoxError>;
}

impl<T: ?Sized + Send + Sync + 'static> IntoComponent for Arc<T> {
    type Output = T;
    fn into_component(self) -> Result<Arc<T>, BoxError> {
        Ok(self)
    }
}

impl<T, E> IntoComponent for Result<Arc<T>, E>
where
    T: ?Sized + Send + Sync + 'static,
    E: Into<BoxError>,
{
    type Output = T;
    fn into_component(self) -> Result<Arc<T>, BoxError> {
        self.map_err(Into::into)
    }
}

/// A component factory; implemented for every `Fn(A1, .., An) -> R` with
/// `n <= 16`, each `Ai: Injectable` and `R: IntoComponent`. `Args` is the
/// tuple of parameter types (it only keeps the impls apart).
pub trait Factory<Args>: Send + Sync + 'static {
    /// The provided type.
    type Output: ?Sized + Send + Sync + 'static;
    /// One dependency per parameter, in order.
    fn dependencies() -> Vec<Dependency>;
    /// Resolves the parameters and calls the function.
    fn create(&self, resolver: &Resolver<'_>) -> Result<Arc<Self::Output>, BoxError>;
}

macro_rules! impl_factory {
    ($($arg:ident),*) => {
        impl<Func, Ret, $($arg,)*> Factory<($($arg,)*)> for Func
        where
            Func: Fn($($arg),*) -> Ret + Send + Sync + 'static,
            Ret: IntoComponent,
            $($arg: Injectable,)*
        {
            type Output = Ret::Output;

            fn dependencies() -> Vec<Dependency> {
                vec![$($arg::dependency()),*]
            }

            #[allow(non_snake_case, unused_variables)]
            fn create(&self, resolver: &Resolver<'_>) -> Result<Arc<Self::Output>, BoxError> {
                $(let $arg = $arg::resolve(resolver)?;)*
                (self)($($arg),*).into_component()
            }
        }
    };
}

impl_factory!();
impl_factory!(A1);
impl_factory!(A1, A2);
impl_factory!(A1, A2, A3);
impl_factory!(A1, A2, A3, A4);
impl_factory!(A1, A2, A3, A4, A5);
impl_factory!(A1, A2, A3, A4, A5, A6);
impl_factory!(A1, A2, A3, A4, A5, A6, A7);
impl_factory!(A1, A2, A3, A4, A5, A6, A7, A8);
impl_factory!(A1, A2, A3, A4, A5, A6, A7, A8, A9);
impl_factory!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10);
impl_factory!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11);
impl_factory!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12);
impl_factory!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13);
impl_factory!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14);
impl_factory!(
    A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14, A15
);
impl_factory!(
    A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14, A15, A16
);
