//! `text_sql!`: `ToSql`/`FromSql` through PostgreSQL's text types for the domain's words
//! (`Resource`, `Status`, `Action`, `Step`, `Slug`, `Isolation`), so that they cross the db boundary whole:
//! bound as their stored name, read back into the type, and an unknown name in a row is an
//! error that names the column's type rather than a string compared later.

/// Implements `ToSql` (the value's `as_str()`) and `FromSql` (`$parse(&str) -> Option<Self>`)
/// for `$t`, accepting whatever `&str` accepts (`text`, `varchar`, ...).
macro_rules! text_sql {
    ($t:ty, $parse:expr) => {
        impl tokio_postgres::types::ToSql for $t {
            fn to_sql(
                &self,
                ty: &tokio_postgres::types::Type,
                out: &mut bytes::BytesMut,
            ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
            {
                <&str as tokio_postgres::types::ToSql>::to_sql(&self.as_str(), ty, out)
            }

            fn accepts(ty: &tokio_postgres::types::Type) -> bool {
                <&str as tokio_postgres::types::ToSql>::accepts(ty)
            }

            tokio_postgres::types::to_sql_checked!();
        }

        impl<'a> tokio_postgres::types::FromSql<'a> for $t {
            fn from_sql(
                ty: &tokio_postgres::types::Type,
                raw: &'a [u8],
            ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
                let s = <&str as tokio_postgres::types::FromSql>::from_sql(ty, raw)?;
                let parse: fn(&str) -> Option<$t> = $parse;
                parse(s).ok_or_else(|| {
                    format!(
                        "unknown {} `{}` in the control database",
                        stringify!($t),
                        crate::excerpt::excerpt(s)
                    )
                    .into()
                })
            }

            fn accepts(ty: &tokio_postgres::types::Type) -> bool {
                <&str as tokio_postgres::types::FromSql>::accepts(ty)
            }
        }
    };
}

pub(crate) use text_sql;
