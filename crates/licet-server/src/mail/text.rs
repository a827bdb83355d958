//! What the mail says, in the account's language: the ledger keeps the facts
//! ([`licet_core::Message`]), the wording lives here.

use chrono::{DateTime, Utc};
use licet_core::{Lang, Message};

/// A subject line and a plain-text body.
pub(crate) struct Words {
    pub(crate) subject: String,
    pub(crate) body: String,
}

fn day(t: DateTime<Utc>, lang: Lang) -> String {
    match lang {
        Lang::Ru => t.format("%d.%m.%Y").to_string(),
        Lang::En => t.format("%Y-%m-%d").to_string(),
    }
}

/// `message` worded in `lang`; `None` for a kind of message this release does not know.
pub(crate) fn words(message: &Message, lang: Lang) -> Option<Words> {
    Some(match (message, lang) {
        (Message::Registered { organization, product_name, number, trial_ends }, Lang::Ru) => Words {
            subject: format!("Регистрационный номер для «{product_name}»"),
            body: format!(
                "Здравствуйте!\n\nСпасибо, что зарегистрировали {organization}.\n\nВаш регистрационный номер:\n\n    {number}\n\n\
                 Сохраните это письмо: номер понадобится, чтобы пользоваться «{product_name}» на других компьютерах \
                 и входить в личный кабинет.{trial}\n",
                trial =
                    trial_ends.map(|t| format!(" Пробный период заканчивается {}.", day(t, lang))).unwrap_or_default(),
            ),
        },
        (Message::Registered { organization, product_name, number, trial_ends }, _) => Words {
            subject: format!("Your registration number for {product_name}"),
            body: format!(
                "Hello,\n\nthank you for registering {organization}.\n\nYour registration number is:\n\n    {number}\n\n\
                 Keep this e-mail: you need the number to use {product_name} on other computers and to sign in \
                 to the customer portal.{trial}\n",
                trial = trial_ends.map(|t| format!(" Your trial ends on {}.", day(t, lang))).unwrap_or_default(),
            ),
        },
        (Message::Reminder { organization, number }, Lang::Ru) => Words {
            subject: "Ваш регистрационный номер".to_owned(),
            body: format!(
                "Здравствуйте!\n\nКто-то (надеемся, что вы) запросил регистрационный номер {organization}:\n\n    {number}\n\n\
                 Если это были не вы, просто удалите это письмо.\n"
            ),
        },
        (Message::Reminder { organization, number }, _) => Words {
            subject: "Your registration number".to_owned(),
            body: format!(
                "Hello,\n\nsomebody (we hope you) asked for the registration number of {organization}:\n\n    {number}\n\n\
                 If it was not you, you can ignore this e-mail.\n"
            ),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_languages_carry_the_number_and_the_trial_end() -> Result<(), &'static str> {
        let trial_ends = DateTime::from_timestamp(1_800_000_000, 0);
        let message = Message::Registered {
            organization: "ООО Ромашка".into(),
            product_name: "Журнал звонков".into(),
            number: "MIKO-1".into(),
            trial_ends,
        };
        let ru = words(&message, Lang::Ru).ok_or("no Russian words")?;
        assert_eq!(ru.subject, "Регистрационный номер для «Журнал звонков»");
        assert!(ru.body.contains("    MIKO-1\n") && ru.body.contains("15.01.2027"), "{}", ru.body);
        let en = words(&message, Lang::En).ok_or("no English words")?;
        assert!(en.body.contains("    MIKO-1\n") && en.body.contains("2027-01-15"), "{}", en.body);
        let reminder = Message::Reminder { organization: "X".into(), number: "MIKO-2".into() };
        assert!(words(&reminder, Lang::Ru).ok_or("no Russian reminder")?.body.contains("MIKO-2"));
        assert!(words(&reminder, Lang::En).ok_or("no English reminder")?.subject.starts_with("Your"));
        assert!(words(&Message::Unknown, Lang::Ru).is_none());
        Ok(())
    }
}
