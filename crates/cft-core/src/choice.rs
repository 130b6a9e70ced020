//! Choices a user makes by name (a method, a metric, an engine, a device, …): one enum per
//! choice, defined once in the crate that owns it with [`choice!`](crate::choice!), which gives
//! it its spellings, serde (specs), `FromStr` (flags, the Python package) and `Display`, all
//! from the same list. Front ends parse into the enum and never match on the text again, so a
//! misspelt choice is refused where it is read, with the list of what is accepted.
//!
//! ```
//! cft_core::choice! {
//!     /// How to greet.
//!     pub enum Greeting {
//!         /// Formally.
//!         Formal = "formal",
//!         /// Not.
//!         Casual = "casual",
//!     }
//! }
//! assert_eq!("casual".parse::<Greeting>(), Ok(Greeting::Casual));
//! let e = "hi".parse::<Greeting>().unwrap_err();
//! assert_eq!(e.to_string(), r#""hi" is not one of "formal", "casual""#);
//! assert_eq!(e.named("greeting").to_string(), r#"greeting = "hi": expected one of "formal", "casual""#);
//! ```

use crate::error::ParamError;

/// A choice enum made by [`choice!`](crate::choice!): its spellings, in declaration order.
pub trait Choice: Copy + std::str::FromStr<Err = UnknownChoice> + Send + Sync + 'static {
    /// Every spelling, one per variant.
    const NAMES: &'static [&'static str];
    /// This variant's spelling.
    fn name(self) -> &'static str;
}

/// A name that is not one of a choice's spellings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownChoice {
    /// What was given.
    pub value: String,
    /// What is accepted.
    pub choices: &'static [&'static str],
}

impl std::fmt::Display for UnknownChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let quoted: Vec<String> = self.choices.iter().map(|c| format!("{c:?}")).collect();
        write!(f, "{:?} is not one of {}", self.value, quoted.join(", "))
    }
}

impl std::error::Error for UnknownChoice {}

impl UnknownChoice {
    /// The same refusal as a parameter error under the front end's name for it
    /// (`method = "sgd": expected one of "bp-asl", "bp-bce", "ga"`).
    pub fn named(self, param: &str) -> ParamError {
        ParamError::unknown(param, &self.value, self.choices)
    }
}

/// Defines a choice enum: variants with their spellings (`Variant = "spelling"`), deriving
/// `Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash` (in declaration order) and serde
/// under those spellings, with [`Choice`](crate::choice::Choice), `FromStr` and `Display`. Extra derives (`Default`) and
/// docs go on the enum and its variants as usual.
#[macro_export]
macro_rules! choice {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        $vis enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant ),+
        }

        impl $name {
            /// Every variant, in declaration order.
            #[allow(dead_code)]
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Its spelling in specs, flags and the Python package.
            pub fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $text ),+
                }
            }
        }

        impl $crate::choice::Choice for $name {
            const NAMES: &'static [&'static str] = &[$($text),+];
            fn name(self) -> &'static str {
                $name::name(self)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::choice::UnknownChoice;
            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    other => Err($crate::choice::UnknownChoice {
                        value: other.to_string(),
                        choices: <$name as $crate::choice::Choice>::NAMES,
                    }),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str($name::name(*self))
            }
        }
    };
}
