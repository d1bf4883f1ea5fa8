"""The words of the demo: Northwind Bank support intents, phrasings, slot values and policies.

Kept apart from :mod:`tuneloop.demo.generate` so the generator reads as logic and this file as
data. Templates are ``str.format`` strings over the slot names that ``generate._slots`` fills.
Two choices keep the synthetic traffic usable for dedup and contamination checks:

- customer sentences carry many slots, small ones such as ``{card}``, ``{when}`` or ``{asap}``
  included, and messages are assembled from several pools, so unrelated records rarely look
  alike (the generator still redraws the few that do; the bank's canned replies do repeat);
- each problem carries its own paraphrase, written with different words but the same slots, so a
  paraphrased eval leak keeps the meaning while sharing almost no 5-grams with the original.

No template contains anything a PII detector should find (no e-mail addresses, phone numbers or
long digit runs): PII appears only where the generator plants it and records it in the truth.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Intent:
    """One kind of customer request and everything needed to write and answer it."""

    name: str
    priority: str
    department: str
    weight: int
    # (problem sentence, paraphrase of problem and ask with other words but the same slots)
    problems: tuple[tuple[str, str], ...]
    asks: tuple[str, ...]
    details: tuple[str, ...]
    replies: tuple[str, ...]
    # (follow-up question, answer) for the second turn of a multi-turn chat
    followups: tuple[tuple[str, str], ...]
    paraphrase_replies: tuple[str, ...]


INTENTS: tuple[Intent, ...] = (
    Intent(
        name="card_lost",
        priority="high",
        department="cards",
        weight=8,
        problems=(
            (
                "I think I lost my {card} ending in {last4} {when}.",
                "Misplaced wallet situation: the Northwind plastic ending {last4} went missing "
                "{when}. Kindly deactivate it and mail out a fresh one.",
            ),
            (
                "My {card} was stolen {when} while I was in {city}.",
                "A thief in {city} grabbed my bank plastic {when}. Shut it off so nobody spends "
                "on it, and get a substitute to me.",
            ),
            (
                "I can't find my {card} anywhere, the last time I used it was at {merchant} "
                "{when}.",
                "Help, my bank card vanished {when}; last swipe was at {merchant}. It needs "
                "switching off plus a substitute.",
            ),
            (
                "Someone took my wallet {when} in {city} and my {card} was in it.",
                "Pickpocketed in {city} {when}, and the Northwind plastic went with the purse. "
                "Deactivate it and issue another?",
            ),
        ),
        asks=(
            "Can you block it {asap} and send me a new one?",
            "Please freeze the card and tell me how I get a replacement.",
            "What do I need to do so nobody else can use it?",
        ),
        details=(
            "I checked the car and my coat pockets twice {when}.",
            "I don't see any strange charges yet but I want to be safe.",
            "I'm traveling for work until {future}, so a fast replacement matters.",
        ),
        replies=(
            "Hi {name}, I'm sorry about your card. I've asked our cards team to block the card "
            "ending in {last4} immediately, and a replacement will be mailed to your address on "
            "file within {days} business days.",
            "{name}, thanks for telling us quickly. Your card is now flagged as lost, so new "
            "purchases will be declined. The cards team will confirm the block and ship a new "
            "card in {days} business days.",
            "Hi {name}, we've started a lost-card case for you. Please also check {app} for "
            "charges you don't recognise; the cards team will contact you about the replacement "
            "within {hours} hours.",
        ),
        followups=(
            (
                "Will my automatic payments stop working?",
                "{name}, recurring payments will fail on the old card, so please update them "
                "with the new card number once it arrives in about {days} business days.",
            ),
            (
                "Can I get the new card sent to a different address?",
                "Yes, {name}. The cards team can ship the replacement to a temporary address "
                "after verifying your identity in {app}.",
            ),
        ),
        paraphrase_replies=(
            "{name}, the missing plastic ending {last4} is deactivated. A substitute is on its "
            "way and should reach you in roughly {days} working days.",
        ),
    ),
    Intent(
        name="dispute_charge",
        priority="medium",
        department="disputes",
        weight=10,
        problems=(
            (
                "There's a charge of {amount} from {merchant} on {date} that I never made.",
                "Got hit with {amount} by {merchant} around {date}, not mine, never authorised "
                "it. I want that money pulled back.",
            ),
            (
                "I was charged {amount} twice by {merchant} {when}.",
                "{merchant} took {amount} from me two separate times {when}. Only one purchase "
                "happened, so one of those should be reversed.",
            ),
            (
                "{merchant} billed me {amount} on {date} for an order I cancelled.",
                "Cancelled my {merchant} order, yet on {date} they still took {amount}. Could "
                "Northwind fight that transaction for me?",
            ),
            (
                "I returned an item to {merchant} weeks ago but the {amount} refund never showed "
                "up and the charge is still there.",
                "Sent my {merchant} purchase back ages ago and the {amount} credit still hasn't "
                "appeared. Please challenge it on my behalf.",
            ),
        ),
        asks=(
            "How do I dispute it?",
            "Can you reverse this charge {asap}?",
            "I'd like to open a dispute please.",
        ),
        details=(
            "I already contacted the merchant and they stopped answering me {when}.",
            "I have the receipt and the cancellation confirmation if you need them.",
            "It was on my {card} ending in {last4}.",
        ),
        replies=(
            "Hi {name}, I've opened a dispute for the {amount} charge from {merchant}. Our "
            "disputes team will review it within {days} business days and may add a temporary "
            "credit while they investigate.",
            "{name}, thanks for the details. The disputes team will contact {merchant} about the "
            "{amount} charge; please keep your receipts, as they may ask for them.",
            "Hi {name}, I've sent the {merchant} charge to our disputes team. You'll get an "
            "update in {app} within {days} business days.",
        ),
        followups=(
            (
                "Do I get my money back while you investigate?",
                "{name}, in most cases we add a temporary credit for the disputed amount within "
                "{days} business days while the investigation is open.",
            ),
            (
                "What if the merchant says the charge is valid?",
                "Then the disputes team will share their evidence with you, {name}, and you can "
                "respond in {app} before a final decision is made.",
            ),
        ),
        paraphrase_replies=(
            "{name}, a claim for the {amount} {merchant} transaction is now open. Expect a "
            "decision from our team in about {days} working days.",
        ),
    ),
    Intent(
        name="reset_password",
        priority="medium",
        department="digital_banking",
        weight=12,
        problems=(
            (
                "I forgot my online banking password and now I'm locked out of {app}.",
                "Can't sign in to {app} anymore, no clue what my passcode was. I need a way "
                "back into my profile, {name} here.",
            ),
            (
                "I keep getting an invalid password error when I log in on my {device}.",
                "My {device} says the credentials are wrong every single attempt. How do I set "
                "up new ones?",
            ),
            (
                "My account got locked after too many login attempts {when}.",
                "Tried signing on a bunch of times {when} and now the profile is frozen. Unfreeze "
                "it for me?",
            ),
            (
                "The password reset link you sent me {when} says it has expired.",
                "That recovery message you sent {when} is dead on arrival. Could someone issue a "
                "working one, {name} asking.",
            ),
        ),
        asks=(
            "How can I reset it?",
            "Can you unlock my account {asap}?",
            "Please help me get back in, I need to pay a bill before {future}.",
        ),
        details=(
            "I'm using {device} if that matters.",
            "I tried the forgot password button three times {when}.",
            "I also changed my phone last month, so the text codes might go to the old one.",
        ),
        replies=(
            "Hi {name}, I've sent your request to our digital banking team. For security, "
            "please use the Forgot password option in {app}; a new reset link is valid for "
            "30 minutes.",
            "{name}, your online banking access was locked after several failed attempts. The "
            "digital banking team will unlock it once you verify your identity, usually within "
            "{hours} hours.",
            "Hi {name}, sorry you're locked out. I've asked our team to issue a fresh reset link; "
            "please check your inbox and spam folder over the next few minutes.",
        ),
        followups=(
            (
                "I didn't get the code, what now?",
                "{name}, codes can take a few minutes. If nothing arrives within {hours} hours, "
                "the digital banking team can verify you and reset access manually.",
            ),
            (
                "Is my money safe while I'm locked out?",
                "Yes, {name}. A lock only stops sign-ins; your balance and scheduled payments in "
                "{app} are not affected.",
            ),
        ),
        paraphrase_replies=(
            "{name}, we've flagged your sign-in trouble. Use the recovery option in {app} to "
            "choose new credentials; the link works for half an hour.",
        ),
    ),
    Intent(
        name="update_address",
        priority="low",
        department="account_services",
        weight=6,
        problems=(
            (
                "I just moved to {city} and need to update my mailing address.",
                "Relocation notice: home is now in {city}. Please redirect all bank mail there "
                "going forward, {name}.",
            ),
            (
                "My address changed {when}, I'm now living on {street} in {city}.",
                "Residence switch: moved {when} to {street}, {city}. Fix my contact details on "
                "file?",
            ),
            (
                "We relocated to {city} and my statements still go to the old place.",
                "Letters from Northwind keep landing at our previous residence even though we're "
                "in {city} now. Correct that please.",
            ),
            (
                "I need to change the address on my {acct}.",
                "Where I live is different these days, so the {acct} contact info is stale. "
                "Could it be refreshed, {name} asking.",
            ),
        ),
        asks=(
            "Can you update it for me?",
            "What documents do you need from me?",
            "Is there a way to do this in {app}?",
        ),
        details=(
            "My new card should go to the new address too.",
            "My partner {name2} is on the joint account and moved with me.",
            "I have a utility bill from {month} with the new address if you need proof.",
        ),
        replies=(
            "Hi {name}, you can update your address in {app} under Profile, or I can ask our "
            "account services team to change it; they may ask for proof of address such as a "
            "utility bill.",
            "{name}, thanks for letting us know about your move. Account services will update "
            "your address within {days} business days and send a confirmation letter to the new "
            "address.",
            "Hi {name}, I've created an address change request. Please upload a recent utility "
            "bill or lease in {app} so the team can complete it.",
        ),
        followups=(
            (
                "Will this change the address for my card too?",
                "Yes, {name}. All accounts and cards under your profile use the same mailing "
                "address once it's updated in {app}.",
            ),
            (
                "How long until my statements go to the new place?",
                "{name}, the next statement after the change is processed, usually within {days} "
                "business days, goes to the new address.",
            ),
        ),
        paraphrase_replies=(
            "{name}, we'll switch your mailing details. Expect a confirmation letter at the new "
            "residence in about {days} working days.",
        ),
    ),
    Intent(
        name="loan_question",
        priority="low",
        department="lending",
        weight=5,
        problems=(
            (
                "I'm thinking about a personal loan of around {loan_amount} to pay down some "
                "credit card debt.",
                "Want to roll my plastic balances into one borrowing of about {loan_amount}. "
                "What would Northwind charge for that?",
            ),
            (
                "What interest rate would I get on a {loan_amount} auto loan?",
                "Financing a car, roughly {loan_amount}. Which APR could you offer me, {name} "
                "wondering.",
            ),
            (
                "I want to borrow {loan_amount} for a home renovation in {city}.",
                "Fixing up our place in {city} and need {loan_amount} of credit. Which options "
                "exist at your bank?",
            ),
            (
                "Can I pay off my personal loan early without a penalty?",
                "If I clear my installment debt ahead of schedule, {name} here, is there any "
                "charge for doing so?",
            ),
        ),
        asks=(
            "What are the rates and terms right now?",
            "How long does approval usually take?",
            "Would applying hurt my credit score?",
        ),
        details=(
            "I've banked with you for {years} years and my income is steady.",
            "I'd prefer a term of {loan_term} months if possible.",
            "My credit score was around {score} the last time I checked.",
        ),
        replies=(
            "Hi {name}, thanks for your interest. Personal loan rates currently start at {apr}% "
            "APR depending on credit history, with terms from 12 to 72 months. A lending "
            "specialist will contact you within {days} business days.",
            "{name}, checking your rate uses a soft credit check, so it won't affect your score. "
            "I've passed your question to our lending team, who will follow up in {app}.",
            "Hi {name}, there's no prepayment penalty on Northwind personal loans. Our lending "
            "team can send you a payoff quote within {days} business days.",
        ),
        followups=(
            (
                "Can I apply online?",
                "Yes, {name}. You can apply in {app} in about ten minutes and usually get a "
                "decision within {days} business days.",
            ),
            (
                "Do you need my pay stubs?",
                "{name}, we may ask for your two most recent pay stubs, which you can upload "
                "securely in {app}.",
            ),
        ),
        paraphrase_replies=(
            "{name}, a lending specialist will reach out with pricing and terms in about {days} "
            "working days.",
        ),
    ),
    Intent(
        name="fee_refund",
        priority="low",
        department="account_services",
        weight=8,
        problems=(
            (
                "I was charged a {fee} monthly maintenance fee on my {acct} even though I kept "
                "the minimum balance.",
                "Northwind took {fee} off my {acct} as an upkeep charge, yet my balance never "
                "dropped under the threshold. Credit it back?",
            ),
            (
                "There's a {fee} foreign transaction fee from my trip to {country} on {date}.",
                "Overseas purchase in {country} around {date} came with a {fee} surcharge. I'd "
                "like that money returned.",
            ),
            (
                "You charged me a {fee} late fee but my payment went out on time.",
                "Penalty of {fee} for paying late, except I paid punctually. That deduction is "
                "unfair, {name} here.",
            ),
            (
                "Why did I get a {fee} ATM fee {when}? I used a Northwind ATM in {city}.",
                "Cash machine in {city} was one of yours, still got billed {fee} {when}. Give "
                "the money back please.",
            ),
        ),
        asks=(
            "Can you refund it?",
            "I'd like that fee reversed please.",
            "Could you waive it this one time?",
        ),
        details=(
            "I've never had a fee like this before, not once in {years} years.",
            "I've been a customer for {years} years.",
            "Honestly I'm thinking about moving my money somewhere else if this keeps happening.",
        ),
        replies=(
            "Hi {name}, I'm sorry about the {fee} fee. I've asked account services to review it; "
            "if it was charged in error, it will be refunded within {days} business days.",
            "{name}, thanks for your loyalty. As a one-time courtesy, account services can "
            "reverse the {fee} fee; you'll see the credit in {app} shortly.",
            "Hi {name}, I've sent the {fee} charge to our account services team for review. "
            "They'll confirm by message within {days} business days.",
        ),
        followups=(
            (
                "How do I avoid this fee next time?",
                "{name}, keeping the minimum daily balance or setting up a monthly direct deposit "
                "waives most account fees; you can check yours in {app}.",
            ),
            (
                "Will the refund show up as a separate line?",
                "Yes, {name}, it appears as a fee reversal credit on your statement within {days} "
                "business days.",
            ),
        ),
        paraphrase_replies=(
            "{name}, our team is checking the {fee} charge now and will credit it back within "
            "{days} working days if it was wrong.",
        ),
    ),
    Intent(
        name="wire_transfer_status",
        priority="high",
        department="payments",
        weight=5,
        problems=(
            (
                "I sent a wire of {wire_amount} to {bank} on {date} and it still hasn't arrived.",
                "Money I transferred to {bank} on {date}, {wire_amount} in total, seems lost in "
                "transit. Can someone chase it?",
            ),
            (
                "My international wire to {country}, sent {when}, is still showing as pending.",
                "Cross-border payment to {country}, initiated {when}, hasn't landed. Status "
                "update please, {name}.",
            ),
            (
                "The recipient at {bank} says they never got my {wire_amount} transfer.",
                "Beneficiary over at {bank} sees nothing of the {wire_amount} I sent. Where did "
                "it go?",
            ),
            (
                "I need to check the status of wire reference {ref}.",
                "Tracking request for outgoing payment {ref}. Has it reached the other side yet, "
                "{name} wondering.",
            ),
        ),
        asks=(
            "Where is my money?",
            "Can you trace it {asap}?",
            "When will it be delivered?",
        ),
        details=(
            "It's for a house deposit due {future}, so the timing really matters.",
            "I double-checked the routing and account details before sending.",
            "The money already left my {acct}.",
        ),
        replies=(
            "Hi {name}, I've asked our payments team to trace wire {ref}. Domestic wires normally "
            "arrive the same day and international wires within {days} business days; we'll "
            "update you as soon as we hear from the receiving bank.",
            "{name}, your wire is with the payments team for a trace under reference {ref}. If "
            "the receiving bank rejected it, the funds will be returned to your account.",
            "Hi {name}, thanks for your patience. Payments has opened a trace on {ref} and will "
            "message you in {app} within {hours} hours.",
        ),
        followups=(
            (
                "Can I cancel the wire instead?",
                "{name}, wires can only be recalled if the receiving bank agrees; the payments "
                "team can request a recall while trace {ref} is open.",
            ),
            (
                "Is there a fee for the trace?",
                "No, {name}, there's no charge for tracing a wire sent from your Northwind "
                "account; updates will appear in {app}.",
            ),
        ),
        paraphrase_replies=(
            "{name}, our payments group is tracking that transfer with the receiving institution "
            "under {ref} and will report back within a day.",
        ),
    ),
    Intent(
        name="close_account",
        priority="medium",
        department="account_services",
        weight=4,
        problems=(
            (
                "I want to close my {acct}.",
                "Done with this {acct}, {name} here. Please terminate it and send me whatever "
                "remains.",
            ),
            (
                "I'm moving abroad to {country} next month and need to close everything at "
                "Northwind.",
                "Relocating to {country} soon, so I'm ending my relationship with your bank. How "
                "do I wind down my accounts?",
            ),
            (
                "Please close my savings account and move the balance to my {acct}.",
                "Shut the savings pot and sweep the leftover funds into my {acct}, if you "
                "would, {name}.",
            ),
            (
                "I'd like to shut down the {acct} I opened for my business in {city}.",
                "Our {city} company no longer needs its {acct}. Terminate it for us?",
            ),
        ),
        asks=(
            "What's the process?",
            "Can you do it before {future}?",
            "Is there any fee for closing?",
        ),
        details=(
            "I already moved my direct deposit elsewhere {when}.",
            "There are no pending checks or payments on it.",
            "Honestly the fees have been too high lately.",
        ),
        replies=(
            "Hi {name}, I'm sorry to see you go. Account services can close the account once the "
            "balance is zero and no payments are pending; they'll contact you within {days} "
            "business days to confirm.",
            "{name}, I've started a closure request. Please move any remaining balance or tell "
            "us where to send it, and cancel automatic payments linked to the account.",
            "Hi {name}, there's no fee to close an account that has been open more than 90 days. "
            "Our team will confirm the closure in {app}.",
        ),
        followups=(
            (
                "Will closing it hurt my credit?",
                "{name}, closing a checking or savings account doesn't affect your credit score; "
                "you'll get a confirmation in {app}.",
            ),
            (
                "Can I get the remaining balance as a check?",
                "Yes, {name}. Account services can mail a check to your address on file within "
                "{days} business days.",
            ),
        ),
        paraphrase_replies=(
            "{name}, we've logged your request to end the relationship. The team will wrap up the "
            "account and return leftover funds in {days} working days.",
        ),
    ),
    Intent(
        name="fraud_alert",
        priority="urgent",
        department="fraud",
        weight=6,
        problems=(
            (
                "I just got a text saying there's suspicious activity on my {card} ending in "
                "{last4}.",
                "An SMS warned me about odd use of the plastic ending {last4}. Is somebody "
                "inside my banking, {name} worried.",
            ),
            (
                "There are three charges from {merchant} in {city} for {amount} each and I'm "
                "nowhere near {city}.",
                "Pretty sure a crook has my details: {merchant} purchases of {amount} over in "
                "{city} that I never made. Freeze it all now.",
            ),
            (
                "Someone called me {when} pretending to be Northwind and asked for my one-time "
                "code, and I think I gave it to them.",
                "Fell for a phone scammer {when} posing as your staff and read out my security "
                "passcode. What now, {name} panicking.",
            ),
            (
                "I see a login to my account from {country} {when} that wasn't me.",
                "Weird sign-in from {country} {when} on my profile, definitely not me. Has my "
                "access been hijacked?",
            ),
        ),
        asks=(
            "Please lock everything {asap}.",
            "Is this a scam or is my account compromised?",
            "What should I do right now?",
        ),
        details=(
            "I'm really panicking about this.",
            "I haven't shared my password with anyone, not even {name2}.",
            "My {card} is still in my hand so it wasn't stolen physically.",
        ),
        replies=(
            "Hi {name}, I've flagged this as urgent for our fraud team and placed a temporary "
            "block on your card. A fraud specialist will contact you within the hour; never share "
            "one-time codes with anyone, including us.",
            "{name}, thank you for reporting this. Your online access has been paused and the "
            "fraud team is reviewing recent activity. They will reach you in {app} shortly.",
            "Hi {name}, please don't reply to that message. Our fraud team is checking the alert "
            "now and will reverse any unauthorised charges they confirm within {days} days.",
        ),
        followups=(
            (
                "Do I need a new card?",
                "{name}, if the fraud team confirms the card was compromised, they'll cancel it "
                "and send a new one within {days} business days.",
            ),
            (
                "Will I lose the money?",
                "No, {name}. You're not liable for confirmed unauthorised transactions reported "
                "promptly; you can follow the case in {app}.",
            ),
        ),
        paraphrase_replies=(
            "{name}, your profile is frozen and our security specialists are reviewing it. "
            "Someone will call you within sixty minutes.",
        ),
    ),
    Intent(
        name="statement_request",
        priority="low",
        department="account_services",
        weight=6,
        problems=(
            (
                "I need my bank statements for the last {months} months for a mortgage "
                "application.",
                "Need proof of my banking history, {months} months' worth of account summaries, "
                "for a home loan. Where do I grab those?",
            ),
            (
                "Can I get a copy of my {month} statement for my {acct}?",
                "Looking for the {month} account summary on my {acct}. Could you produce one, "
                "{name} asking.",
            ),
            (
                "My accountant needs the statements for my business account in {city} for tax "
                "season.",
                "Our bookkeeper wants the paperwork for the {city} company account before filing "
                "taxes. How do we obtain it?",
            ),
            (
                "I can't find my {month} statement in {app}.",
                "The {month} summary is nowhere in {app}. Did it go missing, {name} wondering.",
            ),
        ),
        asks=(
            "Can you send them to my secure inbox?",
            "How do I download them?",
            "Is it possible to get stamped paper copies?",
        ),
        details=(
            "The lender needs them by {future}.",
            "PDF is fine.",
            "I switched to paperless {when}.",
        ),
        replies=(
            "Hi {name}, you can download up to seven years of statements in {app} under "
            "Accounts, Statements. If you need stamped copies, account services can mail them "
            "within {days} business days.",
            "{name}, I've asked account services to prepare your statements. They'll be "
            "available in your secure inbox within {days} business days.",
            "Hi {name}, statements are listed by month in {app}; if one is missing, our team will "
            "regenerate it for you within {days} business days.",
        ),
        followups=(
            (
                "Is there a fee for paper copies?",
                "{name}, the first two paper statements each year are free; after that there is a "
                "small fee listed in {app}.",
            ),
            (
                "Can you send them to my accountant directly?",
                "Yes, {name}. Add your accountant as an authorized viewer in {app}, or sign a "
                "release form at a branch.",
            ),
        ),
        paraphrase_replies=(
            "{name}, your account summaries will appear in the secure inbox within {days} working "
            "days.",
        ),
    ),
    Intent(
        name="mortgage_rate",
        priority="low",
        department="mortgages",
        weight=4,
        problems=(
            (
                "What are your current {term} fixed mortgage rates?",
                "Quick pricing check, {name} here: what interest does Northwind charge on a "
                "{term} home loan today?",
            ),
            (
                "We're looking at a {home_price} house in {city} and want to know what rate we'd "
                "qualify for.",
                "Shopping for a {home_price} property around {city}. What kind of interest could "
                "we expect from your bank?",
            ),
            (
                "Is it a good time to refinance my mortgage? My current rate is {old_rate}%.",
                "Thinking of swapping my {old_rate}% home loan for a cheaper one. Worth it right "
                "now with your pricing?",
            ),
            (
                "How much would the monthly payment be on a {home_price} home with {down}% down?",
                "Putting {down}% toward a {home_price} place, what would each monthly installment "
                "come to?",
            ),
        ),
        asks=(
            "Can someone send me a quote?",
            "Do you offer rate locks?",
            "What documents would I need to get pre-approved?",
        ),
        details=(
            "We're first-time buyers.",
            "Our combined income is about {income} a year.",
            "We'd like to close before {future}.",
        ),
        replies=(
            "Hi {name}, today's {term} fixed rate starts at {mrate}% with a 60-day rate lock "
            "available. A mortgage advisor will send you a personalised quote within {days} "
            "business days.",
            "{name}, great question. Our mortgages team can compare options with your situation "
            "and estimate your closing costs; they'll reach out in {days} business days.",
            "Hi {name}, for pre-approval you'll usually need two recent pay stubs, two years of "
            "tax returns and two months of statements. A mortgage advisor will contact you in "
            "{app}.",
        ),
        followups=(
            (
                "Is the rate fixed for the whole term?",
                "{name}, yes, with a fixed-rate mortgage the rate stays the same for the full "
                "term; your advisor will confirm it in writing.",
            ),
            (
                "Are there points or fees?",
                "{name}, your advisor will list any points and fees in the loan estimate within "
                "{days} business days so you can compare options.",
            ),
        ),
        paraphrase_replies=(
            "{name}, one of our home-lending advisors will send tailored pricing within {days} "
            "working days.",
        ),
    ),
    Intent(
        name="app_bug",
        priority="medium",
        department="digital_banking",
        weight=8,
        problems=(
            (
                "The app keeps crashing on my {device} as soon as I open the transfers screen.",
                "Northwind software on my {device} freezes and quits whenever I tap transfers. "
                "Totally unusable, {name}.",
            ),
            (
                "Since the update to version {version}, I can't see my balance in {app}.",
                "Build {version} broke things: {app} no longer displays how much money I have. "
                "Known problem?",
            ),
            (
                "Mobile check deposit fails every time with an unknown error on my {device}.",
                "Photo cheque upload on my {device} never goes through, just a vague failure "
                "message. Anything wrong on your side?",
            ),
            (
                "{app} has been logging me out every few seconds, it started {when}.",
                "It began {when}: the phone banking tool kicks me out almost instantly. Can "
                "your tech people look, {name} asking.",
            ),
        ),
        asks=(
            "Is this a known issue?",
            "Can you fix it {asap}?",
            "What can I do in the meantime?",
        ),
        details=(
            "I already deleted and reinstalled it {when}.",
            "My internet connection is fine, other apps work.",
            "I need to move money before {future}.",
        ),
        replies=(
            "Hi {name}, thanks for reporting this. Our digital banking team is aware of issues on "
            "some devices after version {version}; please update to the latest version and "
            "restart your phone. We'll follow up within {days} business days.",
            "{name}, sorry about the trouble. I've logged a bug report with your device details. "
            "In the meantime you can use online banking in a browser.",
            "Hi {name}, please try clearing the app cache and signing in again. If it still "
            "fails, our digital banking team will contact you within {hours} hours.",
        ),
        followups=(
            (
                "Can I deposit the check another way?",
                "{name}, yes, you can deposit it at any Northwind ATM or branch, or mail it to "
                "our deposit centre; it usually clears in {days} business days.",
            ),
            (
                "Will I be notified when it's fixed?",
                "Yes, {name}. We'll message you in your secure inbox once the fix is released "
                "for {app}.",
            ),
        ),
        paraphrase_replies=(
            "{name}, the tech team has your bug details and is looking into it. A browser sign-in "
            "works meanwhile.",
        ),
    ),
    Intent(
        name="overdraft",
        priority="medium",
        department="account_services",
        weight=6,
        problems=(
            (
                "My {acct} went negative by {amount} {when} and I got hit with an overdraft fee.",
                "Balance dipped {amount} below zero {when} and now there's a penalty on top. Any "
                "leniency, {name} here?",
            ),
            (
                "Why was I charged {fee} for an overdraft when my paycheck was pending?",
                "Salary was already on its way, yet you billed {fee} because the balance went "
                "red. That seems wrong to me.",
            ),
            (
                "I want to turn off overdraft coverage on my {acct} so my card just gets declined.",
                "Please stop letting my {acct} go into the red; I'd rather have purchases "
                "refused than pay penalties.",
            ),
            (
                "I'm overdrawn because {merchant} charged me before my deposit cleared.",
                "{merchant} took its payment ahead of my incoming funds, which left the balance "
                "negative. Help, {name} asking.",
            ),
        ),
        asks=(
            "Can you waive the fee?",
            "How do I avoid this?",
            "What are my options?",
        ),
        details=(
            "I'll have the money back in the account by {future}.",
            "This is the first time it has happened.",
            "I'd like to link my savings as backup {asap}.",
        ),
        replies=(
            "Hi {name}, I've asked account services to review the overdraft fee. You can also "
            "link your savings account for free overdraft protection in {app}.",
            "{name}, I've noted your request about overdraft coverage. Once it's processed, "
            "transactions that would overdraw your account will be declined instead.",
            "Hi {name}, once your balance is positive again, the team can consider a one-time "
            "fee refund. They'll contact you within {days} business days.",
        ),
        followups=(
            (
                "How long do I have to bring the balance back up?",
                "{name}, please bring the balance positive within {days} business days to avoid "
                "further fees.",
            ),
            (
                "Does an overdraft show on my credit report?",
                "No, {name}, overdrafts aren't reported to credit bureaus unless the account goes "
                "to collections; you can track it in {app}.",
            ),
        ),
        paraphrase_replies=(
            "{name}, we'll look at that negative-balance charge and your protection settings and "
            "get back within {days} working days.",
        ),
    ),
    Intent(
        name="direct_deposit",
        priority="low",
        department="payments",
        weight=5,
        problems=(
            (
                "My paycheck from {employer} didn't show up {when}.",
                "Salary from {employer} should have landed by now, it hasn't. Do you see anything "
                "incoming, {name} asking.",
            ),
            (
                "I need the routing and account number to set up direct deposit with {employer}.",
                "Setting up payroll at {employer}; they want Northwind's bank codes for my "
                "account. Where do I get those?",
            ),
            (
                "{employer} told me payroll went out on {date} but I don't see the deposit.",
                "HR at {employer} insists wages were sent {date}, yet my balance shows nothing "
                "new. Can you look?",
            ),
            (
                "I want to split my direct deposit from {employer} between checking and savings.",
                "Could part of my {employer} salary go to savings and the rest to checking, "
                "{name} wondering.",
            ),
        ),
        asks=(
            "Can you check on it?",
            "Where do I find the form?",
            "When will the money be available?",
        ),
        details=(
            "Rent is due on {future}.",
            "This is my first paycheck since switching to Northwind in {month}.",
            "My employer uses an online payroll portal.",
        ),
        replies=(
            "Hi {name}, you'll find a pre-filled direct deposit form in {app} under Accounts, "
            "which includes your routing and account numbers. Deposits usually post the morning "
            "they're received.",
            "{name}, I've asked our payments team to look for the deposit from {employer}. "
            "Payroll files sometimes arrive a day late; we'll update you within {days} business "
            "days.",
            "Hi {name}, you can split a direct deposit by giving {employer} two accounts and "
            "amounts. The payments team can help if they need a bank letter.",
        ),
        followups=(
            (
                "Can I get paid two days early?",
                "{name}, eligible accounts receive direct deposits up to two days early at no "
                "cost; you can turn it on in {app}.",
            ),
            (
                "What if my employer needs a voided check?",
                "{name}, the direct deposit form in {app} is accepted by most employers instead "
                "of a voided check.",
            ),
        ),
        paraphrase_replies=(
            "{name}, the payments team is checking for the incoming salary and will message you "
            "within {days} working days.",
        ),
    ),
    Intent(
        name="travel_notice",
        priority="low",
        department="cards",
        weight=5,
        problems=(
            (
                "I'm traveling to {country} from {future} to {future2} and want to make sure my "
                "{card} works there.",
                "Vacation in {country} between {future} and {future2}: will purchases on my "
                "Northwind plastic go through over there?",
            ),
            (
                "I'm heading to {country} for a conference and worry my {card} will be blocked.",
                "Business trip abroad to {country} coming up. Flagging it so the bank doesn't "
                "freeze my plastic, {name}.",
            ),
            (
                "Please add a travel notice to my account, I'll be in {country} for {trip_days} "
                "days.",
                "Going overseas, {country}, roughly {trip_days} days. Note that on my profile so "
                "nothing gets declined?",
            ),
            (
                "My {card} got declined in {country} {when} even though I'm just on vacation.",
                "Holiday in {country} and the Northwind plastic was refused {when}. Sort it out "
                "please, {name}.",
            ),
        ),
        asks=(
            "Do I need to let you know in advance?",
            "Can you note it on my account?",
            "Will there be foreign transaction fees?",
        ),
        details=(
            "I'll also be using ATMs there.",
            "My partner {name2} has a card on the same account and is coming too.",
            "I'll have my {device} with me for verification texts.",
        ),
        replies=(
            "Hi {name}, you no longer need to file a travel notice, but I've added one for "
            "{country} to be safe. Foreign transaction fees are 3% on standard cards and waived "
            "on the Northwind Travel card.",
            "{name}, have a great trip! Your card will work in {country}; please keep mobile "
            "alerts on so you can confirm any flagged purchase quickly.",
            "Hi {name}, I've noted your trip to {country} on your card profile. If a purchase is "
            "declined abroad, reply to the alert in {app} and it will be approved.",
        ),
        followups=(
            (
                "Can I use my card at ATMs abroad?",
                "Yes, {name}. Northwind cards work at most ATMs in {country}; a small withdrawal "
                "fee may apply.",
            ),
            (
                "What if I lose my card while travelling?",
                "{name}, freeze it in {app} right away and the cards team can send an emergency "
                "card to your hotel.",
            ),
        ),
        paraphrase_replies=(
            "{name}, your trip to {country} is on file. Overseas purchases should go through; "
            "keep alerts switched on.",
        ),
    ),
)

# A wrong answer looks plausible: it confuses the request with a neighbouring intent.
CONFUSABLE: dict[str, str] = {
    "card_lost": "fraud_alert",
    "fraud_alert": "card_lost",
    "dispute_charge": "fee_refund",
    "fee_refund": "overdraft",
    "overdraft": "fee_refund",
    "reset_password": "app_bug",
    "app_bug": "reset_password",
    "update_address": "statement_request",
    "statement_request": "update_address",
    "loan_question": "mortgage_rate",
    "mortgage_rate": "loan_question",
    "wire_transfer_status": "direct_deposit",
    "direct_deposit": "wire_transfer_status",
    "close_account": "update_address",
    "travel_notice": "card_lost",
}

SYSTEM_PROMPTS: dict[str, str] = {
    "chat_widget": "You are the Northwind Bank support triage assistant. Answer every customer "
    "message with one JSON object with the keys intent, priority, department and reply. Keep "
    "the reply short, polite and accurate.",
    "mobile_app": "Northwind Bank in-app assistant. Classify the customer's message and answer "
    "as JSON: intent, priority (low, medium, high or urgent), department, reply. Never ask for "
    "full card numbers or passwords.",
    "email": "You triage e-mails sent to Northwind Bank customer support. Return a JSON object "
    "with intent, priority, department and a short reply to the customer.",
}

OPENERS: dict[str, tuple[str, ...]] = {
    "chat_widget": ("Hi,", "Hello there.", "Hey,", "Hi Northwind,", "", "", "Good morning.", "Hi!"),
    "mobile_app": ("", "", "", "hi", "Hello,", "Hey there,"),
    "email": (
        "Hello Northwind Bank team,",
        "Dear Sir or Madam,",
        "To whom it may concern,",
        "Hi support,",
        "Dear Northwind support,",
        "Good afternoon,",
    ),
}

CLOSERS: dict[str, tuple[str, ...]] = {
    "chat_widget": ("Thanks!", "thx", "Thank you.", "Appreciate it.", "", "", "Thanks, {name}"),
    "mobile_app": ("", "", "thanks", "ty", "Thank you!"),
    "email": (
        "Best regards,\n{name} {last}",
        "Kind regards,\n{name}",
        "Thanks in advance,\n{name} {last}",
        "Sincerely,\n{name} {last}",
        "Many thanks,\n{name}",
    ),
}

# Asks that fit any intent, mixed with each intent's own.
GENERIC_ASKS: tuple[str, ...] = (
    "Can you help me with this?",
    "What are my options here?",
    "Please let me know what to do {asap}.",
    "Who can I talk to about this?",
    "How quickly can this be sorted out?",
    "Is there anything you need from me?",
)

# Optional last sentences of an answer.
REPLY_CLOSINGS: tuple[str, ...] = (
    "Is there anything else I can help with?",
    "Let me know if you have any other questions.",
    "Thanks for banking with Northwind.",
    "You can reply here if anything changes.",
    "We appreciate your patience, {name}.",
    "You'll also find updates in {app}.",
)

# Sentences that fit any intent, used to vary and lengthen messages.
GENERIC_DETAILS: tuple[str, ...] = (
    "I've been with Northwind for {years} years and never had this problem.",
    "I'm on my lunch break so a quick answer would help.",
    "Sorry if this is the wrong place to ask.",
    "I tried calling {when} but the wait was too long.",
    "The branch in {city} told me to write to you here.",
    "My name on the account is {name} {last}.",
    "I'm not very good with technology, so please keep it simple.",
    "My {acct} is the one I use for everything.",
)

# (name, text) of the policy documents: the bank's own words, trained on as plain text.
DOCUMENTS: tuple[tuple[str, str], ...] = (
    (
        "doc-lost-stolen-cards",
        "Northwind Bank policy: lost and stolen cards. Customers can freeze a debit or credit "
        "card at any time in the Northwind app, and a frozen card declines every new purchase "
        "while keeping recurring payments on hold. When a card is reported lost or stolen, the "
        "cards team blocks it permanently and mails a replacement to the address on file within "
        "five to seven business days; expedited delivery is free for cardholders who are "
        "travelling. Customers are not liable for unauthorised transactions reported within two "
        "business days. Support agents must never ask for a full card number, a PIN or a "
        "one-time passcode.",
    ),
    (
        "doc-disputes",
        "Northwind Bank policy: card disputes. A customer may dispute a card transaction within "
        "sixty days of the statement date on which it first appeared. The disputes team "
        "acknowledges a claim within two business days and, for claims above twenty-five "
        "dollars, adds a provisional credit within ten business days while the merchant is "
        "contacted. Customers should keep receipts, cancellation confirmations and any "
        "correspondence with the merchant. If the merchant provides evidence that the charge was "
        "valid, the provisional credit is reversed with fifteen days' notice.",
    ),
    (
        "doc-fee-schedule",
        "Northwind Bank fee schedule, personal accounts. Everyday checking has a monthly "
        "maintenance fee of twelve dollars, waived with a minimum daily balance of fifteen "
        "hundred dollars or one direct deposit per month. Overdraft fees are thirty-five dollars "
        "per item, at most three per day, and no fee applies when the account is overdrawn by "
        "less than fifty dollars. Foreign transaction fees are three percent on standard cards "
        "and zero on the Northwind Travel card. Withdrawals at Northwind ATMs are always free.",
    ),
    (
        "doc-wires",
        "Northwind Bank policy: wire transfers. Domestic wires submitted before four in the "
        "afternoon Eastern time on a business day are sent the same day; international wires "
        "usually arrive within one to five business days depending on intermediary banks. A "
        "wire can be recalled only with the consent of the receiving bank. Customers who report "
        "a missing wire receive a trace reference, and the payments team contacts the receiving "
        "bank within one business day.",
    ),
    (
        "doc-privacy",
        "Northwind Bank privacy notice for support conversations. Messages sent through the chat "
        "widget, the mobile app or e-mail are stored for quality and training purposes after "
        "personal data such as card numbers, account identifiers, government identifiers and "
        "contact details has been removed. Customers can ask for their conversations to be "
        "deleted at any time, and deletion requests are honoured within thirty days.",
    ),
)

FIRST_NAMES: tuple[str, ...] = (
    "Maria", "James", "Aisha", "Wei", "Sofia", "Daniel", "Priya", "Lucas", "Emma", "Omar",
    "Hannah", "Mateo", "Chloe", "Kenji", "Fatima", "Noah", "Olivia", "Ravi", "Grace", "Diego",
    "Zoe", "Samuel", "Leila", "Ethan", "Nadia", "Tomas", "Ava", "Kwame", "Isabel", "Liam",
    "Yuki", "Amara", "Jonas", "Elena", "Marcus", "Ines", "Victor", "Mei", "Sean", "Lucia",
)  # fmt: skip
LAST_NAMES: tuple[str, ...] = (
    "Lopez", "Smith", "Khan", "Chen", "Rossi", "Novak", "Patel", "Silva", "Brown", "Haddad",
    "Meyer", "Garcia", "Dubois", "Tanaka", "Okafor", "Wilson", "Kowalski", "Nguyen", "Murphy",
    "Jensen", "Costa", "Ibrahim", "Schmidt", "Reyes", "Andersen", "Moreau", "Ali", "Walker",
)  # fmt: skip
MERCHANTS: tuple[str, ...] = (
    "Greenleaf Grocers", "Skyline Airways", "Bluebird Coffee", "MegaMart", "StreamFlix",
    "Harbor Hardware", "QuickRide", "Pixel Electronics", "Sunset Hotels", "FreshFit Gym",
    "Corner Pharmacy", "Bookworm Books", "TrailGear Outdoor", "Luna Cosmetics", "FastFuel",
    "Maple Furniture", "CloudPhone Mobile", "Sparrow Pet Supply", "Urban Threads",
    "Golden Wok Takeaway", "ParkSmart Parking", "Nimbus Software", "Ocean Cruises", "TicketHub",
)  # fmt: skip
CITIES: tuple[str, ...] = (
    "Chicago", "Denver", "Seattle", "Austin", "Boston", "Miami", "Portland", "Atlanta",
    "Phoenix", "San Diego", "Minneapolis", "Nashville", "Pittsburgh", "Sacramento", "Tampa",
    "Raleigh", "Cleveland", "Salt Lake City", "Kansas City", "Baltimore",
)  # fmt: skip
COUNTRIES: tuple[str, ...] = (
    "Portugal", "Japan", "Mexico", "Italy", "Canada", "Thailand", "Germany", "Brazil",
    "Morocco", "Iceland", "Vietnam", "Greece", "Peru", "Kenya", "Spain", "New Zealand",
)  # fmt: skip
STREETS: tuple[str, ...] = (
    "Maple Avenue", "Oak Street", "Lakeview Drive", "Cedar Lane", "Harbor Road", "Elm Court",
    "Sunset Boulevard", "Pine Ridge Way", "Mill Street", "Riverside Terrace",
)  # fmt: skip
BANKS: tuple[str, ...] = (
    "First Harbor Bank", "Pacific Trust", "Union Mutual", "Crescent Credit Union",
    "Atlas Savings", "Banco Meridional", "Nordic Handelsbank", "Kestrel Bank",
)  # fmt: skip
EMPLOYERS: tuple[str, ...] = (
    "Acme Logistics", "Brightside Health", "Copperline Foods", "Delta Robotics",
    "Evergreen Schools", "Fairway Insurance", "the county", "my staffing agency",
)  # fmt: skip
DEVICES: tuple[str, ...] = (
    "iPhone 15", "iPhone 12", "Pixel 8", "Galaxy S23", "Galaxy A54", "OnePlus 11", "iPad",
    "Motorola G84",
)  # fmt: skip
CARDS: tuple[str, ...] = (
    "debit card",
    "credit card",
    "Northwind Visa",
    "card",
    "debit card",
    "Mastercard",
)
ACCOUNTS: tuple[str, ...] = (
    "checking account", "savings account", "account", "joint account", "business checking",
    "everyday checking",
)  # fmt: skip
WHENS: tuple[str, ...] = (
    "yesterday", "this morning", "last night", "on {weekday}", "a couple of days ago",
    "earlier today", "over the weekend", "last week",
)  # fmt: skip
ASAPS: tuple[str, ...] = (
    "as soon as possible", "right away", "today if you can", "asap", "before the weekend",
    "urgently", "quickly",
)  # fmt: skip
APPS: tuple[str, ...] = ("the app", "the Northwind app", "the mobile app", "online banking")
TERMS: tuple[str, ...] = ("30-year", "15-year", "20-year")

# Word swaps for near-duplicates: the kind of change a user makes when re-sending a message.
SYNONYMS: dict[str, str] = {
    "please": "pls",
    "thanks": "thank you",
    "help": "assist",
    "want": "need",
    "really": "truly",
    "quickly": "fast",
    "money": "funds",
    "because": "since",
    "can": "could",
    "think": "believe",
    "charged": "billed",
    "new": "fresh",
    "fix": "sort out",
    "account": "acct",
    "know": "understand",
    "still": "yet",
    "right": "straight",
    "get": "receive",
}
FILLERS: tuple[str, ...] = ("really", "just", "actually", "please", "again", "honestly", "now")

# Sentences that carry a planted PII value {v}, per kind (the kind names of curate.pii).
PII_SENTENCES: dict[str, tuple[str, ...]] = {
    "EMAIL": (
        "You can e-mail me at {v} instead.",
        "Please send the confirmation to {v} when it's done.",
        "My e-mail on file is wrong, it should be {v} now.",
    ),
    "PHONE": (
        "Call me back at {v} please.",
        "My number is {v} if you need to reach me.",
        "You can text me on {v} any time.",
    ),
    "CREDIT_CARD": (
        "The full card number is {v} if that helps.",
        "Card number {v}, expiry {expiry}.",
        "It's this card: {v}.",
    ),
    "IBAN": (
        "My IBAN is {v}, in case you need it.",
        "The money came from my account abroad, IBAN {v}.",
        "Please refund it to IBAN {v}.",
    ),
    "US_SSN": (
        "My SSN is {v} if you need to verify me.",
        "For verification, my social security number is {v}.",
        "SSN for the file: {v}.",
    ),
    "IP_ADDRESS": (
        "I was connecting from IP address {v} at the time.",
        "The login came from {v}, which isn't mine.",
        "My router's public IP is {v} if that helps.",
    ),
    "SECRET": (
        "I'm a developer and my integration key is {v}, is it still active?",
        "Here is the key from the developer portal: {v}.",
        "Our accounting tool uses the key {v} and it stopped working.",
    ),
}
EMAIL_DOMAINS: tuple[str, ...] = (
    "gmail.com", "outlook.com", "yahoo.com", "proton.me", "icloud.com", "fastmail.com",
)  # fmt: skip

# Merchant descriptors for the over-long pasted statement.
STATEMENT_LINES: tuple[str, ...] = (
    "POS PURCHASE", "CARD PAYMENT", "ONLINE PURCHASE", "RECURRING PAYMENT", "CONTACTLESS",
)  # fmt: skip
