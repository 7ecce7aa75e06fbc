// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";

/// @title FLCoordinator
/// @notice Coordinates capacity-aware federated ensemble learning: hospitals register with a
/// signed Proof of Capacity, submit one model update per round (model hash plus self-reported
/// confidence and expected calibration error), and the owner records the hash of each round's
/// weighted ensemble prediction. Ensemble weights are computed on-chain in fixed point.
///
/// The mode is chosen at deployment and never changes:
/// - **seed mode** (the default): the reference protocol. The owner registers hospitals with
///   their signed PoC (`registerHospital`) and hospitals submit in one step (`submitUpdate`).
/// - **trust mode**: a verifier times each hospital's PoC under a fresh on-chain challenge and
///   attests the throughput (`issueChallenge`, `registerHospitalAttested`); hospitals stake ETH
///   (`depositStake`, or a stake sent with the registration), commit to their update and reveal
///   it in the next phase (`commitUpdate`, `startRevealPhase`, `revealUpdate`); auditors report
///   the metrics they measure on the committed model (`reportAudit`), and a claim deviating by
///   more than the tolerance loses the round's weight and a fraction of the stake; each round's
///   reward pool (`fundRewardPool`) is split by on-chain round weight; hospitals leave with
///   stake + rewards - slashes (`withdraw`).
/// @dev Storage layout (every round operation touches a constant number of slots):
/// - slot 0: `Ownable._owner`; slot 1: `Ownable2Step._pendingOwner` and the challenge nonce;
///   slot 2: the round state (`RoundState`: current round, hospital count, this round's
///   submitter count, closed flag, the round's timestamp epoch, the trust-mode phase, the
///   round's revealed weight and the reward reserve).
/// - one `Hospital` slot per hospital (registration data, its latest metrics, its stake), plus
///   its benchmark hash and name, written once at registration.
/// - seed mode, per round and hospital: the model hash (one slot) and a 66-bit "lane" holding
///   confidence, ECE, the participation snapshot and the timestamp. Lanes are packed three to a
///   slot by registration index (`index / 3` picks the slot, `index % 3` the lane), so only the
///   first of three hospitals to submit in a round pays for a fresh slot. Per round: the
///   prediction hash (one slot) and a header stored in the top 58 bits of the round's lane slot 0
///   (ensemble timestamp, the round's final submitter count, recorded flag).
/// - trust mode, per round and hospital: the commitment, overwritten by the model hash at the
///   reveal (one slot), and a trust record (one slot: the 66-bit lane, the reveal position, the
///   round weight revealed before it, the stake at the reveal, the audit outcome). Per round: the
///   prediction hash and a reward record (total and failed weight, counts, ensemble timestamp),
///   written when the round closes (the open round's revealed weight and count live in the
///   round state, which every reveal reads anyway), plus one slot per failed audit.
/// Timestamps never wrap: a lane keeps the low 32 bits of `block.timestamp`; the high bits (the
/// "epoch", which changes once every 2^32 seconds, ~136 years) are those of the round's start,
/// kept once per epoch change in `_epochLog`. A submission or ensemble whose block falls in
/// another epoch than its round's start (a round open across a multiple of 2^32 seconds) also
/// keeps its full timestamp in `_fullTimestamps`. Steady rounds pay nothing for this.
contract FLCoordinator is Ownable2Step {
    /// @notice Hardware tier of a hospital, established by its Proof of Capacity.
    enum CapacityClass {
        Weak,
        Medium,
        Strong
    }

    /// @notice Model family a tier must train.
    enum ModelType {
        Light,
        Medium,
        Heavy
    }

    /// @notice Phase of a trust-mode round: hospitals commit, then (after the owner's
    /// `startRevealPhase`) reveal; audits are accepted while the round is open.
    enum Phase {
        Commit,
        Reveal
    }

    /// @notice What the score field of a submission (`confidence` in the seed interface) holds,
    /// chosen at deployment. The weight formula is the same fixed-point one for both:
    /// `capMul * score * (SCALE - ece) / SCALE^2 + bonus`.
    /// - `Confidence` (the seed default): mean max-softmax on the validation split. A model that
    ///   predicts one class for everything can be confident and earn a high weight.
    /// - `BalancedAccuracy`: mean per-class recall on the validation split; a one-class model
    ///   scores 1/k with k classes, so collapse is not rewarded.
    enum WeightScore {
        Confidence,
        BalancedAccuracy
    }

    /// @notice Outcome of the audit of one submission.
    enum AuditStatus {
        None,
        Passed,
        Failed
    }

    /// @notice Deployment parameters. With `enabled == false` the seed protocol is deployed and
    /// the other fields are ignored.
    /// @param enabled Trust mode.
    /// @param minStake Wei a hospital must hold staked to commit an update.
    /// @param rewardPerRound Wei moved from the reward reserve into each round's pool (0: none).
    /// @param auditTolerance Largest |claimed - audited| confidence or ECE that stands (fixed point).
    /// @param slashFraction Share of the stake (as of its reveal) slashed by a failed audit, fixed
    /// point (`SCALE` = the whole stake).
    /// @param mediumMinThroughput Verifier-measured throughput (milli-samples per second) from
    /// which a hospital may register as Medium.
    /// @param strongMinThroughput Likewise for Strong.
    /// @param verifier The account that issues challenges and attests throughputs (zero: the
    /// deployer).
    /// @param auditors The audit committee: 1, 3 or 5 distinct accounts, the median report
    /// decides (empty: the deployer alone).
    struct TrustConfig {
        bool enabled;
        uint96 minStake;
        uint96 rewardPerRound;
        uint16 auditTolerance;
        uint16 slashFraction;
        uint64 mediumMinThroughput;
        uint64 strongMinThroughput;
        address verifier;
        address[] auditors;
    }

    /// @notice Fixed-point scale of confidence, ECE, capacity multipliers and weights.
    uint256 public constant SCALE = 10_000;
    /// @notice Participation bonus per round taken part in.
    uint256 public constant BONUS_PER_ROUND = 500;
    /// @notice Upper bound of the participation bonus.
    uint256 public constant MAX_BONUS = 2_500;
    /// @notice Upper bound of a weight.
    uint256 public constant MAX_WEIGHT = 15_000;
    /// @notice Largest number of hospitals a deployment accepts (the lane header's 24-bit count).
    uint256 public constant MAX_HOSPITALS = (1 << 24) - 1;
    // Largest audit committee.
    uint256 private constant _MAX_AUDITORS = 5;

    uint256 private constant _CAP_MUL_WEAK = 8_000;
    uint256 private constant _CAP_MUL_MEDIUM = 10_000;
    uint256 private constant _CAP_MUL_STRONG = 12_000;
    bytes32 private constant _ATTESTATION_TYPEHASH =
        keccak256("FLCoordinator.Attestation(address hospital,bytes32 challenge,uint256 throughput)");

    // Lane layout (66 bits, three lanes per slot at bit offsets 0, 66 and 132):
    // [0, 32) low bits of the submission timestamp, [32, 46) confidence, [46, 60) ece,
    // [60, 66) rounds participated as of the round, saturated at 63.
    uint256 private constant _LANE_BITS = 66;
    uint256 private constant _LANES_PER_SLOT = 3;
    uint256 private constant _LANE_MASK = (1 << 66) - 1;
    uint256 private constant _CONF_SHIFT = 32;
    uint256 private constant _ECE_SHIFT = 46;
    uint256 private constant _ROUNDS_SHIFT = 60;
    uint256 private constant _METRIC_MASK = (1 << 14) - 1;
    uint256 private constant _ROUNDS_MASK = (1 << 6) - 1;
    uint256 private constant _MAX_ROUNDS_SNAPSHOT = 63;
    // Round header in the top bits of lane slot 0: [198, 230) low 32 bits of the ensemble
    // timestamp, [230, 254) submitter count, bit 254 set once the ensemble is recorded.
    uint256 private constant _HEADER_TS_SHIFT = 198;
    uint256 private constant _HEADER_COUNT_SHIFT = 230;
    uint256 private constant _COUNT_MASK = (1 << 24) - 1;
    uint256 private constant _HEADER_RECORDED = 1 << 254;
    uint256 private constant _HEADER_MASK = ((1 << 58) - 1) << 198;

    // Trust record (one slot per round and hospital): [0, 66) the lane, [66, 90) reveal position,
    // [90, 128) round weight revealed before it, [128, 224) stake at the reveal, [224, 238)
    // audited confidence, [238, 252) audited ECE, [252, 254) AuditStatus.
    uint256 private constant _T_POSITION_SHIFT = 66;
    uint256 private constant _T_PREFIX_SHIFT = 90;
    uint256 private constant _T_STAKE_SHIFT = 128;
    uint256 private constant _T_AUDIT_CONF_SHIFT = 224;
    uint256 private constant _T_AUDIT_ECE_SHIFT = 238;
    uint256 private constant _T_STATUS_SHIFT = 252;
    uint256 private constant _WEIGHT_SUM_MASK = (1 << 38) - 1; // 15000 * (2^24 - 1) < 2^38
    uint256 private constant _STAKE_MASK = (1 << 96) - 1;
    // Reward record (one slot per trust-mode round; every round's pool is `rewardPerRound`):
    // [0, 38) total revealed weight, [38, 76) weight of failed audits, [76, 100) failed audits,
    // [100, 124) reveals, [124, 156) low bits of the ensemble timestamp, bit 156 ensemble
    // recorded, bit 157 pool returned to the reserve. The failure fields are written by failed
    // audits while the round is open; the others when it closes.
    uint256 private constant _R_FAILED_WEIGHT_SHIFT = 38;
    uint256 private constant _R_FAILED_COUNT_SHIFT = 76;
    uint256 private constant _R_REVEALED_SHIFT = 100;
    uint256 private constant _R_TS_SHIFT = 124;
    uint256 private constant _R_RECORDED = 1 << 156;
    uint256 private constant _R_RETURNED = 1 << 157;

    // Bit offsets and masks of the `RoundState` fields inside slot 2 (as laid out by the compiler;
    // the round is at offset 0).
    uint256 private constant _S_COUNT_SHIFT = 32;
    uint256 private constant _S_SUBMITTERS_SHIFT = 56;
    uint256 private constant _S_CLOSED_SHIFT = 80;
    uint256 private constant _S_EPOCH_SHIFT = 96;
    uint256 private constant _S_PHASE_SHIFT = 128;
    uint256 private constant _S_WEIGHT_SHIFT = 136;
    uint256 private constant _S_RESERVE_SHIFT = 176;
    uint256 private constant _S_ROUND_MASK = 0xffffffff;
    uint256 private constant _S_SUBMITTERS_MASK = 0xffffff << 56;
    uint256 private constant _S_CLOSED_MASK = 0xff << 80;
    uint256 private constant _S_EPOCH_MASK = 0xffffffff << 96;
    uint256 private constant _S_PHASE_MASK = 0xff << 128;
    uint256 private constant _S_WEIGHT_MASK = ((1 << 40) - 1) << 136;
    uint256 private constant _MAX_RESERVE = (1 << 80) - 1;
    // Bit offsets of the `Hospital` fields inside its slot (as laid out by the compiler).
    uint256 private constant _H_CAPACITY_SHIFT = 24;
    uint256 private constant _H_REGISTERED_SHIFT = 32;
    uint256 private constant _H_LAST_ROUND_SHIFT = 40;
    uint256 private constant _H_ROUNDS_SHIFT = 72;
    uint256 private constant _H_CONF_SHIFT = 104;
    uint256 private constant _H_ECE_SHIFT = 120;
    uint256 private constant _H_STAKE_SHIFT = 136;
    uint256 private constant _H_EXITED_SHIFT = 232;
    // The fields a submission replaces: lastRound, roundsParticipated, confidence and ece.
    uint256 private constant _H_SUBMISSION_MASK = ((1 << 96) - 1) << 40;

    /// @dev One storage slot per hospital: registration data, its latest submission, its stake.
    struct Hospital {
        uint24 index;
        CapacityClass capacity;
        bool registered;
        uint32 lastRound;
        uint32 roundsParticipated;
        uint16 confidence;
        uint16 ece;
        uint96 stake; // trust mode: wei staked, net of slashes
        bool exited; // trust mode: withdrew its stake and rewards
    }

    /// @dev A hospital's slot followed by the data written once at registration.
    struct HospitalRecord {
        Hospital core;
        bytes32 pocBenchmarkHash;
        string name;
    }

    /// @dev The round state, one slot (slot 2).
    struct RoundState {
        uint32 round; // the current round (0 before the first)
        uint24 hospitalCount;
        uint24 submitters; // seed mode: submissions in the current round
        bool closed; // the current round's ensemble was recorded
        // Set at deployment and never cleared: it keeps the slot non-zero, so the first
        // registration pays for an update of the slot, not a fresh write.
        bool deployed;
        uint32 epoch; // block.timestamp >> 32 when the current round started
        Phase phase; // trust mode: the current round's phase
        uint40 roundWeight; // trust mode: the current round's revealed weight (claimed)
        uint80 reserve; // trust mode: wei funded for rewards and not yet given to a round
    }

    bool private immutable _trust;
    uint256 private immutable _minStake;
    uint256 private immutable _rewardPerRound;
    uint256 private immutable _auditTolerance;
    uint256 private immutable _slashFraction;
    uint256 private immutable _mediumMinThroughput;
    uint256 private immutable _strongMinThroughput;
    address private immutable _verifier;
    uint256 private immutable _auditorCount;
    address private immutable _auditor0;
    address private immutable _auditor1;
    address private immutable _auditor2;
    address private immutable _auditor3;
    address private immutable _auditor4;
    uint256 private immutable _deployEpoch;
    WeightScore private immutable _weightScore;

    // Packed with Ownable2Step._pendingOwner in slot 1.
    uint64 private _challengeNonce;
    RoundState private _state;
    /// @dev Epoch changes, oldest first: `firstRound << 32 | epoch` for each round that started in
    /// another epoch than the round before it. Rounds before the first entry are in `_deployEpoch`.
    uint64[] private _epochLog;

    mapping(address hospital => HospitalRecord) private _hospitals;
    /// @dev Seed mode: the model hash. Trust mode: the commitment, then the model hash.
    mapping(uint256 submissionKey => bytes32) private _modelHashes;
    mapping(uint256 laneKey => uint256) private _lanes;
    mapping(uint256 round => bytes32) private _predictionHashes;
    /// @dev Full timestamps of submissions (by submission key) and ensembles (by the key of round
    /// and the zero address) made in another epoch than their round's start.
    mapping(uint256 key => uint256) private _fullTimestamps;
    mapping(address hospital => bytes32) private _challenges;
    mapping(uint256 submissionKey => uint256) private _trustRecords;
    mapping(uint256 round => uint256) private _roundRewards;
    /// @dev Failed audits of a round, by `round << 32 | i`: reveal position | weight << 24.
    mapping(uint256 failedKey => uint256) private _failedAudits;
    /// @dev Committee reports not yet complete: bit i set once auditor i reported; its confidence
    /// at `8 + 28 i`, its ECE at `22 + 28 i`.
    mapping(uint256 submissionKey => uint256) private _auditReports;

    /// @notice A hospital was registered with a verified Proof of Capacity.
    event HospitalRegistered(
        address indexed hospital, string name, CapacityClass capacityClass, bytes32 pocBenchmarkHash
    );
    /// @notice A new round was opened.
    event RoundStarted(uint256 indexed round);
    /// @notice A hospital's update for a round was accepted (trust mode: revealed).
    event UpdateSubmitted(
        uint256 indexed round,
        address indexed hospital,
        bytes32 modelHash,
        uint256 confidence,
        uint256 ece,
        ModelType modelType
    );
    /// @notice The hash of a round's ensemble prediction was recorded; the round is closed.
    event EnsemblePredictionRecorded(uint256 indexed round, bytes32 predictionHash, uint256 participantCount);
    /// @notice The verifier issued a PoC challenge to a hospital.
    event ChallengeIssued(address indexed hospital, bytes32 challenge, uint256 nonce);
    /// @notice A hospital was registered with the verifier's attestation of its throughput.
    event HospitalAttested(
        address indexed hospital, bytes32 challenge, uint256 throughput, CapacityClass measuredCapacity
    );
    /// @notice Wei were added to a hospital's stake.
    event StakeDeposited(address indexed hospital, uint256 amount, uint256 stake);
    /// @notice A hospital committed to its update for a round.
    event UpdateCommitted(uint256 indexed round, address indexed hospital, bytes32 commitment);
    /// @notice The round's commit phase ended; reveals are accepted.
    event RevealPhaseStarted(uint256 indexed round);
    /// @notice A committee member reported the metrics it measured on a submission's model.
    event AuditReported(
        uint256 indexed round, address indexed hospital, address indexed auditor, uint256 confidence, uint256 ece
    );
    /// @notice A submission's audit was decided (the committee's median, or the only report).
    event AuditResolved(
        uint256 indexed round, address indexed hospital, bool passed, uint256 confidence, uint256 ece, uint256 slashed
    );
    /// @notice The owner added wei to the reward reserve.
    event RewardPoolFunded(uint256 amount, uint256 reserve);
    /// @notice The owner closed the current round without an ensemble record (trust mode).
    event RoundClosed(uint256 indexed round);
    /// @notice A round's pool went back to the reserve (nobody in the round kept any weight).
    event RoundPoolReturned(uint256 indexed round, uint256 amount);
    /// @notice A hospital left with its stake and rewards.
    event HospitalWithdrew(address indexed hospital, uint256 stake, uint256 rewards);
    /// @notice The owner took wei out of the reward reserve.
    event ReserveWithdrawn(address indexed to, uint256 amount);

    /// @notice The hospital address is the zero address.
    error FLCoordinator__ZeroAddress();
    /// @notice The hospital is already registered.
    error FLCoordinator__AlreadyRegistered(address hospital);
    /// @notice The Proof-of-Capacity signature does not recover to the hospital (or is malformed
    /// or malleable); `recovered` is the zero address when the signature could not be parsed.
    error FLCoordinator__InvalidSignature(address hospital, address recovered);
    /// @notice The deployment already holds `MAX_HOSPITALS` hospitals.
    error FLCoordinator__TooManyHospitals();
    /// @notice A round cannot start before any hospital is registered.
    error FLCoordinator__NoHospitals();
    /// @notice The address is not a registered hospital.
    error FLCoordinator__NotRegistered(address account);
    /// @notice No round has been started yet.
    error FLCoordinator__NoActiveRound();
    /// @notice The round's ensemble was recorded; it accepts no more submissions.
    error FLCoordinator__RoundClosed(uint256 round);
    /// @notice The hospital already submitted an update in this round.
    error FLCoordinator__AlreadySubmitted(uint256 round, address hospital);
    /// @notice Confidence above `SCALE`.
    error FLCoordinator__ConfidenceOutOfRange(uint256 confidence);
    /// @notice ECE above `SCALE`.
    error FLCoordinator__EceOutOfRange(uint256 ece);
    /// @notice The submitted model type is not the one assigned to the hospital's tier.
    error FLCoordinator__WrongModelType(ModelType expected, ModelType provided);
    /// @notice The round's ensemble prediction was already recorded.
    error FLCoordinator__EnsembleAlreadyRecorded(uint256 round);
    /// @notice An ensemble needs at least one participant.
    error FLCoordinator__ZeroParticipants();
    /// @notice The claimed participant count differs from the round's actual submissions.
    error FLCoordinator__ParticipantCountMismatch(uint256 round, uint256 claimed, uint256 actual);
    /// @notice The hospital submitted nothing in that round.
    error FLCoordinator__NoSubmission(uint256 round, address hospital);
    /// @notice The function belongs to the seed protocol; this deployment runs trust mode.
    error FLCoordinator__SeedModeOnly();
    /// @notice The function belongs to trust mode; this deployment runs the seed protocol.
    error FLCoordinator__TrustModeOnly();
    /// @notice A slash larger than the stake: a configured slash fraction above `SCALE` (the
    /// whole stake) at deployment, or (never reached) a slash above the stake it is taken from.
    error FLCoordinator__SlashBeyondStake(uint256 slash, uint256 stake);
    /// @notice The audit committee is not 1, 3 or 5 distinct non-zero accounts.
    error FLCoordinator__InvalidAuditors(uint256 count);
    /// @notice An audit tolerance above `SCALE`.
    error FLCoordinator__ToleranceOutOfRange(uint256 tolerance);
    /// @notice The Medium threshold is above the Strong one.
    error FLCoordinator__TierThresholdsOutOfOrder(uint256 mediumMin, uint256 strongMin);
    /// @notice Only the verifier issues challenges.
    error FLCoordinator__NotVerifier(address account);
    /// @notice No challenge is pending for the hospital (issue one first).
    error FLCoordinator__NoChallenge(address hospital);
    /// @notice The attestation does not recover to the verifier.
    error FLCoordinator__InvalidAttestation(address hospital, address recovered);
    /// @notice The claimed tier is above the one the verifier-measured throughput supports.
    error FLCoordinator__CapacityAboveMeasured(CapacityClass claimed, CapacityClass measured);
    /// @notice The hospital's stake is below the deployment's minimum.
    error FLCoordinator__StakeBelowMinimum(address hospital, uint256 stake, uint256 minimum);
    /// @notice A stake above 2^96 - 1 wei.
    error FLCoordinator__StakeOverflow(uint256 stake);
    /// @notice A reward reserve above 2^80 - 1 wei (about 1.2 million ETH).
    error FLCoordinator__ReserveOverflow(uint256 reserve);
    /// @notice The hospital withdrew and left.
    error FLCoordinator__HospitalExited(address hospital);
    /// @notice A zero commitment.
    error FLCoordinator__EmptyCommitment();
    /// @notice The round is in another phase than the operation needs.
    error FLCoordinator__WrongPhase(uint256 round, Phase expected, Phase current);
    /// @notice The hospital already committed in this round.
    error FLCoordinator__AlreadyCommitted(uint256 round, address hospital);
    /// @notice The hospital did not commit in this round.
    error FLCoordinator__NotCommitted(uint256 round, address hospital);
    /// @notice The hospital already revealed its update in this round.
    error FLCoordinator__AlreadyRevealed(uint256 round, address hospital);
    /// @notice The revealed update does not hash to the hospital's commitment.
    error FLCoordinator__RevealMismatch(uint256 round, address hospital);
    /// @notice Only the audit committee reports audits.
    error FLCoordinator__NotAuditor(address account);
    /// @notice Audits of a round are accepted only while it is the current, open round.
    error FLCoordinator__AuditWindowClosed(uint256 round);
    /// @notice The audited model is not the one the hospital committed to.
    error FLCoordinator__AuditModelMismatch(uint256 round, address hospital, bytes32 committed, bytes32 reported);
    /// @notice The auditor already reported on this submission, or its audit is decided.
    error FLCoordinator__AlreadyAudited(uint256 round, address hospital, address auditor);
    /// @notice The reward reserve cannot fund the next round's pool.
    error FLCoordinator__RewardPoolNotFunded(uint256 round, uint256 reserve, uint256 required);
    /// @notice More wei asked of the reward reserve than it holds.
    error FLCoordinator__InsufficientReserve(uint256 requested, uint256 reserve);
    /// @notice The hospital takes part in the open round; it may withdraw once the round closes.
    error FLCoordinator__WithdrawalDuringOpenRound(uint256 round, address hospital);
    /// @notice The weights and failed flags differ in length.
    error FLCoordinator__LengthMismatch(uint256 weights, uint256 failed);

    /// @notice Deploys the coordinator; the deployer becomes the owner. Ownership moves in two
    /// steps (`transferOwnership`, then `acceptOwnership` by the new owner).
    /// @param config The mode and, in trust mode, its parameters (see `TrustConfig`).
    /// @param score What the score field of every submission holds (see `WeightScore`).
    constructor(TrustConfig memory config, WeightScore score) Ownable(msg.sender) {
        _weightScore = score;
        uint256 epoch = block.timestamp >> 32;
        _deployEpoch = epoch;
        _state = RoundState({
            round: 0,
            hospitalCount: 0,
            submitters: 0,
            closed: false,
            deployed: true,
            epoch: uint32(epoch),
            phase: Phase.Commit,
            roundWeight: 0,
            reserve: 0
        });
        address[_MAX_AUDITORS] memory auditors;
        uint256 count = config.auditors.length;
        if (config.enabled) {
            if (config.slashFraction > SCALE) revert FLCoordinator__SlashBeyondStake(config.slashFraction, SCALE);
            if (config.auditTolerance > SCALE) revert FLCoordinator__ToleranceOutOfRange(config.auditTolerance);
            if (config.mediumMinThroughput > config.strongMinThroughput) {
                revert FLCoordinator__TierThresholdsOutOfOrder(config.mediumMinThroughput, config.strongMinThroughput);
            }
            if (count > _MAX_AUDITORS || (count != 0 && count % 2 == 0)) revert FLCoordinator__InvalidAuditors(count);
            for (uint256 i = 0; i < count; ++i) {
                address auditor = config.auditors[i];
                if (auditor == address(0)) revert FLCoordinator__InvalidAuditors(count);
                for (uint256 j = 0; j < i; ++j) {
                    if (auditors[j] == auditor) revert FLCoordinator__InvalidAuditors(count);
                }
                auditors[i] = auditor;
            }
        }
        if (count == 0 || !config.enabled) {
            count = 1;
            auditors[0] = msg.sender;
        }
        _trust = config.enabled;
        _minStake = config.enabled ? config.minStake : 0;
        _rewardPerRound = config.enabled ? config.rewardPerRound : 0;
        _auditTolerance = config.auditTolerance;
        _slashFraction = config.slashFraction;
        _mediumMinThroughput = config.mediumMinThroughput;
        _strongMinThroughput = config.strongMinThroughput;
        _verifier = config.verifier == address(0) ? msg.sender : config.verifier;
        _auditorCount = count;
        _auditor0 = auditors[0];
        _auditor1 = auditors[1];
        _auditor2 = auditors[2];
        _auditor3 = auditors[3];
        _auditor4 = auditors[4];
    }

    // ================================================================== registration

    /// @notice Registers a hospital after verifying its Proof-of-Capacity signature (seed mode).
    /// @dev The hospital signs (EIP-191) `keccak256(abi.encode(address(this), block.chainid,
    /// hospital, keccak256(bytes(name)), uint8(capacity), benchmarkHash))`, so a signature is bound
    /// to this deployment, this chain, the hospital, the name it is listed under, its tier and its
    /// benchmark: the owner cannot register it under a name or tier it did not sign. Malleable
    /// (high-s) signatures are rejected. Owner only.
    /// @param hospital The hospital's account (it will send its own submissions).
    /// @param name Human-readable hospital name.
    /// @param capacity The tier established by the Proof of Capacity.
    /// @param benchmarkHash SHA-256 of the benchmark result.
    /// @param signature 65-byte r || s || v signature of the hospital over the PoC statement.
    function registerHospital(
        address hospital,
        string calldata name,
        CapacityClass capacity,
        bytes32 benchmarkHash,
        bytes calldata signature
    ) external onlyOwner {
        if (_trust) revert FLCoordinator__SeedModeOnly();
        _checkNewHospital(hospital);
        bytes32 statement = keccak256(
            abi.encode(address(this), block.chainid, hospital, keccak256(bytes(name)), uint8(capacity), benchmarkHash)
        );
        _checkSigner(statement, signature, hospital);
        _register(hospital, name, capacity, benchmarkHash, 0);
    }

    /// @notice Issues a fresh PoC challenge to a hospital about to register (trust mode).
    /// @dev Verifier only. `challenge = keccak256(abi.encode(address(this), block.chainid,
    /// hospital, nonce, blockhash(block.number - 1)))` with a contract-wide nonce: it depends on the
    /// latest block hash, so nobody can compute it before this transaction. The verifier runs the
    /// hospital's benchmark under it (seeding the benchmark's data with it) and times it itself;
    /// the hospital signs it into its PoC statement. A new challenge replaces a pending one.
    /// @param hospital The account to be registered.
    /// @return challenge The challenge, also in `ChallengeIssued` and `getChallenge`.
    function issueChallenge(address hospital) external returns (bytes32 challenge) {
        _requireTrust();
        if (msg.sender != _verifier) revert FLCoordinator__NotVerifier(msg.sender);
        _checkNewHospital(hospital);
        uint256 nonce;
        // A 64-bit counter incremented once per transaction cannot wrap.
        unchecked {
            nonce = ++_challengeNonce;
        }
        challenge = keccak256(abi.encode(address(this), block.chainid, hospital, nonce, blockhash(block.number - 1)));
        _challenges[hospital] = challenge;
        emit ChallengeIssued(hospital, challenge, nonce);
    }

    /// @notice Registers a hospital with its signed PoC and the verifier's attestation of the
    /// throughput it measured under the pending challenge (trust mode).
    /// @dev Owner only. Binds, and checks:
    /// - the hospital's EIP-191 signature over `keccak256(abi.encode(address(this),
    ///   block.chainid, hospital, keccak256(bytes(name)), uint8(capacity), benchmarkHash,
    ///   challenge))` (the seed statement plus the challenge);
    /// - the verifier's EIP-191 signature over `keccak256(abi.encode(keccak256(
    ///   "FLCoordinator.Attestation(address hospital,bytes32 challenge,uint256 throughput)"),
    ///   address(this), block.chainid, hospital, challenge, throughput))`;
    /// - `capacity` at most the tier of `throughput` under the deployment's thresholds.
    /// The challenge is consumed. Any wei sent become the hospital's stake (an owner-sponsored
    /// stake, the hospital's to withdraw); the hospital can also stake itself with `depositStake`.
    /// It must hold at least the minimum stake to commit.
    /// @param hospital The hospital's account.
    /// @param name Human-readable hospital name (signed by the hospital).
    /// @param capacity The tier the hospital claims (signed by the hospital).
    /// @param benchmarkHash SHA-256 of the benchmark result (signed by the hospital).
    /// @param throughput Verifier-measured throughput, milli-samples per second.
    /// @param signature The hospital's 65-byte signature over its statement.
    /// @param attestation The verifier's 65-byte signature over the attestation.
    function registerHospitalAttested(
        address hospital,
        string calldata name,
        CapacityClass capacity,
        bytes32 benchmarkHash,
        uint256 throughput,
        bytes calldata signature,
        bytes calldata attestation
    ) external payable onlyOwner {
        _requireTrust();
        _checkNewHospital(hospital);
        bytes32 challenge = _challenges[hospital];
        if (challenge == bytes32(0)) revert FLCoordinator__NoChallenge(hospital);
        CapacityClass measured = _tierOf(throughput);
        if (capacity > measured) revert FLCoordinator__CapacityAboveMeasured(capacity, measured);
        bytes32 statement = keccak256(
            abi.encode(
                address(this), block.chainid, hospital, keccak256(bytes(name)), uint8(capacity), benchmarkHash, challenge
            )
        );
        _checkSigner(statement, signature, hospital);
        bytes32 attested =
            keccak256(abi.encode(_ATTESTATION_TYPEHASH, address(this), block.chainid, hospital, challenge, throughput));
        (address recovered, ECDSA.RecoverError err,) =
            ECDSA.tryRecoverCalldata(MessageHashUtils.toEthSignedMessageHash(attested), attestation);
        if (err != ECDSA.RecoverError.NoError || recovered != _verifier) {
            revert FLCoordinator__InvalidAttestation(hospital, recovered);
        }
        if (msg.value > _STAKE_MASK) revert FLCoordinator__StakeOverflow(msg.value);
        delete _challenges[hospital];
        _register(hospital, name, capacity, benchmarkHash, msg.value);
        emit HospitalAttested(hospital, challenge, throughput, measured);
        if (msg.value != 0) emit StakeDeposited(hospital, msg.value, msg.value);
    }

    /// @notice Adds the wei sent to the sender's stake (trust mode; a registered hospital that
    /// has not withdrawn). The stake is the hospital's: only a failed audit takes a share of it
    /// (`slashFraction` of the stake as of that reveal), and `withdraw` returns the rest.
    function depositStake() external payable {
        _requireTrust();
        Hospital storage h = _hospitals[msg.sender].core;
        if (!h.registered) revert FLCoordinator__NotRegistered(msg.sender);
        if (h.exited) revert FLCoordinator__HospitalExited(msg.sender);
        uint256 stake = h.stake + msg.value;
        if (stake > _STAKE_MASK) revert FLCoordinator__StakeOverflow(stake);
        h.stake = uint96(stake);
        emit StakeDeposited(msg.sender, msg.value, stake);
    }

    // ================================================================== rounds

    /// @notice Opens the next round. Owner only; needs at least one registered hospital.
    /// @dev Seed mode: if the previous round was never closed by an ensemble record, its
    /// submitter count is archived into its round header so `getRoundSubmitterCount` keeps
    /// answering for it. Trust mode: the previous round's audit window closes (its rewards are
    /// final) and `rewardPerRound` moves from the reserve into the new round's pool; the round
    /// opens in the commit phase. A round starting in another timestamp epoch (2^32 seconds) than
    /// the round before it appends the epoch to `_epochLog` (once every ~136 years).
    function startNewRound() external onlyOwner {
        uint256 state = _loadState();
        if ((state >> _S_COUNT_SHIFT) & 0xffffff == 0) revert FLCoordinator__NoHospitals();
        uint256 previous = state & 0xffffffff;
        bool previousOpen = (state >> _S_CLOSED_SHIFT) & 0xff == 0;
        uint256 round = uint256(uint32(previous) + 1); // checked: reverts after 2**32 - 1 rounds
        if (_trust) {
            if (previous != 0 && previousOpen) state = _closeRewards(previous, state, 0);
            uint256 pool = _rewardPerRound;
            uint256 reserve = state >> _S_RESERVE_SHIFT;
            if (reserve < pool) revert FLCoordinator__RewardPoolNotFunded(round, reserve, pool);
            // reserve >= pool (checked above): the subtraction stays inside the field.
            unchecked {
                state -= pool << _S_RESERVE_SHIFT;
            }
        } else {
            uint256 submitters = (state >> _S_SUBMITTERS_SHIFT) & 0xffffff;
            if (submitters != 0 && previousOpen) _writeHeader(previous, 0, submitters, 0);
        }
        // New round: no submitters, not closed, commit phase, no revealed weight.
        state = (state & ~(_S_ROUND_MASK | _S_SUBMITTERS_MASK | _S_CLOSED_MASK | _S_PHASE_MASK | _S_WEIGHT_MASK))
            | round;
        uint256 epoch = block.timestamp >> 32;
        // An epoch beyond 32 bits (timestamps past 2^64 s, which no client produces) is not
        // logged: every timestamp of such a round takes the full-timestamp path instead.
        if (epoch != (state >> _S_EPOCH_SHIFT) & 0xffffffff && epoch <= type(uint32).max) {
            _epochLog.push(uint64((round << 32) | epoch));
            state = (state & ~_S_EPOCH_MASK) | (epoch << _S_EPOCH_SHIFT);
        }
        _storeState(state);
        emit RoundStarted(round);
    }

    /// @notice Submits the sender's model update for the current round (seed mode).
    /// @dev Registered hospitals only (msg.sender), once per round, while the round is open.
    /// @param modelHash Hash of the trained model.
    /// @param confidence Mean max-softmax on the hospital's validation data, fixed point (0..SCALE).
    /// @param ece Expected calibration error, fixed point (0..SCALE).
    /// @param modelType Model family trained; must be the one assigned to the hospital's tier.
    function submitUpdate(bytes32 modelHash, uint256 confidence, uint256 ece, ModelType modelType) external {
        if (_trust) revert FLCoordinator__SeedModeOnly();
        HospitalRecord storage record = _hospitals[msg.sender];
        uint256 hospital;
        uint256 state;
        assembly ("memory-safe") {
            hospital := sload(record.slot)
            state := sload(_state.slot)
        }
        if ((hospital >> _H_REGISTERED_SHIFT) & 0xff == 0) revert FLCoordinator__NotRegistered(msg.sender);
        uint256 round = state & 0xffffffff;
        if (round == 0) revert FLCoordinator__NoActiveRound();
        if ((state >> _S_CLOSED_SHIFT) & 0xff != 0) revert FLCoordinator__RoundClosed(round);
        if (confidence > SCALE) revert FLCoordinator__ConfidenceOutOfRange(confidence);
        if (ece > SCALE) revert FLCoordinator__EceOutOfRange(ece);
        ModelType expected = ModelType((hospital >> _H_CAPACITY_SHIFT) & 0xff);
        if (modelType != expected) revert FLCoordinator__WrongModelType(expected, modelType);
        if ((hospital >> _H_LAST_ROUND_SHIFT) & 0xffffffff == round) {
            revert FLCoordinator__AlreadySubmitted(round, msg.sender);
        }
        uint256 rounds;
        unchecked {
            rounds = ((hospital >> _H_ROUNDS_SHIFT) & 0xffffffff) + 1;
            state += 1 << _S_SUBMITTERS_SHIFT;
        }
        hospital = (hospital & ~_H_SUBMISSION_MASK) | (round << _H_LAST_ROUND_SHIFT) | (rounds << _H_ROUNDS_SHIFT)
            | (confidence << _H_CONF_SHIFT) | (ece << _H_ECE_SHIFT);
        assembly ("memory-safe") {
            sstore(record.slot, hospital)
            sstore(_state.slot, state)
        }
        uint256 key = _submissionKey(round, msg.sender);
        _modelHashes[key] = modelHash;
        uint256 index = hospital & 0xffffff;
        uint256 snapshot = rounds < _MAX_ROUNDS_SNAPSHOT ? rounds : _MAX_ROUNDS_SNAPSHOT;
        uint256 lane = _timestampLow((state >> _S_EPOCH_SHIFT) & 0xffffffff, key) | (confidence << _CONF_SHIFT)
            | (ece << _ECE_SHIFT) | (snapshot << _ROUNDS_SHIFT);
        _lanes[_laneKey(round, index)] |= lane << _laneOffset(index);
        emit UpdateSubmitted(round, msg.sender, modelHash, confidence, ece, modelType);
    }

    /// @notice Commits the sender to its update for the current round (trust mode, commit phase).
    /// @dev Registered hospitals holding at least the minimum stake, once per round. The
    /// commitment is `keccak256(abi.encode(modelHash, confidence, ece, uint8(modelType), salt))`
    /// with a secret random salt; nothing about the update is public until the reveal, so a
    /// hospital cannot copy another's metrics. Copying another's commitment does not help either:
    /// it can only be opened with the other's model hash, whose model the copier cannot hand to
    /// the auditors.
    /// @param commitment The commitment (non-zero).
    function commitUpdate(bytes32 commitment) external {
        _requireTrust();
        if (commitment == bytes32(0)) revert FLCoordinator__EmptyCommitment();
        (uint256 hospital, uint256 state, uint256 round) = _loadSubmitter(_hospitals[msg.sender]);
        if ((hospital >> _H_EXITED_SHIFT) & 0xff != 0) revert FLCoordinator__HospitalExited(msg.sender);
        uint256 stake = (hospital >> _H_STAKE_SHIFT) & _STAKE_MASK;
        if (stake < _minStake) revert FLCoordinator__StakeBelowMinimum(msg.sender, stake, _minStake);
        _requirePhase(state, round, Phase.Commit);
        uint256 key = _submissionKey(round, msg.sender);
        if (_modelHashes[key] != bytes32(0)) revert FLCoordinator__AlreadyCommitted(round, msg.sender);
        _modelHashes[key] = commitment;
        emit UpdateCommitted(round, msg.sender, commitment);
    }

    /// @notice Ends the current round's commit phase and opens its reveal phase (trust mode).
    /// @dev Owner only. Phases are advanced by the owner, not by block numbers, so a simulation
    /// on an automining chain needs no empty blocks; a commit after this reverts, and so does a
    /// reveal before it.
    function startRevealPhase() external onlyOwner {
        _requireTrust();
        uint256 state = _loadState();
        uint256 round = _openRound(state);
        _requirePhase(state, round, Phase.Commit);
        _storeState(state | (uint256(Phase.Reveal) << _S_PHASE_SHIFT));
        emit RevealPhaseStarted(round);
    }

    /// @notice Reveals the sender's committed update (trust mode, reveal phase).
    /// @dev The update must hash to the sender's commitment and pass the seed's checks (metric
    /// ranges, model type of the tier). Its claimed round weight joins the round's total; it
    /// stands unless an audit deviates by more than the tolerance before the round closes.
    /// @param modelHash Hash of the trained model.
    /// @param confidence Mean max-softmax on the validation data, fixed point (0..SCALE).
    /// @param ece Expected calibration error, fixed point (0..SCALE).
    /// @param modelType Model family trained; must be the one assigned to the hospital's tier.
    /// @param salt The salt of the commitment.
    function revealUpdate(bytes32 modelHash, uint256 confidence, uint256 ece, ModelType modelType, bytes32 salt)
        external
    {
        _requireTrust();
        HospitalRecord storage record = _hospitals[msg.sender];
        (uint256 hospital, uint256 state, uint256 round) = _loadSubmitter(record);
        _requirePhase(state, round, Phase.Reveal);
        uint256 key = _submissionKey(round, msg.sender);
        bytes32 commitment = _modelHashes[key];
        if (commitment == bytes32(0)) revert FLCoordinator__NotCommitted(round, msg.sender);
        if ((hospital >> _H_LAST_ROUND_SHIFT) & 0xffffffff == round) {
            revert FLCoordinator__AlreadyRevealed(round, msg.sender);
        }
        if (keccak256(abi.encode(modelHash, confidence, ece, modelType, salt)) != commitment) {
            revert FLCoordinator__RevealMismatch(round, msg.sender);
        }
        _checkSubmission(hospital, confidence, ece, modelType);
        uint256 rounds;
        (hospital, rounds) = _withSubmission(hospital, round, confidence, ece);
        assembly ("memory-safe") {
            sstore(record.slot, hospital)
        }
        _modelHashes[key] = modelHash;
        uint256 weight =
            calculateWeightPure(CapacityClass((hospital >> _H_CAPACITY_SHIFT) & 0xff), confidence, ece, rounds);
        _trustRecords[key] = _lane(state, key, confidence, ece, rounds)
            | (((state >> _S_SUBMITTERS_SHIFT) & _COUNT_MASK) << _T_POSITION_SHIFT)
            | (((state >> _S_WEIGHT_SHIFT) & _WEIGHT_SUM_MASK) << _T_PREFIX_SHIFT)
            | (((hospital >> _H_STAKE_SHIFT) & _STAKE_MASK) << _T_STAKE_SHIFT);
        // At most 2^24 - 1 reveals of weight <= 15000 each: the count and the weight sum
        // (< 2^38) stay inside their fields.
        unchecked {
            _storeState(state + (weight << _S_WEIGHT_SHIFT) + (1 << _S_SUBMITTERS_SHIFT));
        }
        emit UpdateSubmitted(round, msg.sender, modelHash, confidence, ece, modelType);
    }

    /// @notice Reports the confidence and ECE an auditor measured on a revealed submission's
    /// model (trust mode; audit committee only; while the round is open).
    /// @dev Optimistic: a claim stands unless its audit deviates. With one auditor its report
    /// decides; with a committee of k, the component-wise median of the k reports decides once
    /// all are in. The audit fails when the claimed confidence or ECE differs from the decided
    /// value by more than `auditTolerance`: the submission's round weight becomes zero (its
    /// claimed weight leaves the round's total, so the others share the pool), the hospital loses
    /// `slashFraction` of its stake as of the reveal (to the reward reserve), the round no longer
    /// counts towards its participation bonus, and its latest metrics become the audited ones.
    /// @param round The round (the current one).
    /// @param hospital The audited hospital.
    /// @param modelHash The model hash the auditor evaluated; must be the revealed one.
    /// @param confidence Audited confidence, fixed point (0..SCALE).
    /// @param ece Audited ECE, fixed point (0..SCALE).
    function reportAudit(uint256 round, address hospital, bytes32 modelHash, uint256 confidence, uint256 ece)
        external
    {
        _requireTrust();
        uint256 auditor = _auditorIndex(msg.sender);
        if (confidence > SCALE) revert FLCoordinator__ConfidenceOutOfRange(confidence);
        if (ece > SCALE) revert FLCoordinator__EceOutOfRange(ece);
        uint256 key = _submissionKey(round, hospital);
        uint256 trustRecord = _trustRecords[key];
        if (trustRecord == 0) revert FLCoordinator__NoSubmission(round, hospital);
        uint256 state = _loadState();
        if (round != state & 0xffffffff || (state >> _S_CLOSED_SHIFT) & 0xff != 0) {
            revert FLCoordinator__AuditWindowClosed(round);
        }
        if (trustRecord >> _T_STATUS_SHIFT != 0) revert FLCoordinator__AlreadyAudited(round, hospital, msg.sender);
        bytes32 revealed = _modelHashes[key];
        if (revealed != modelHash) revert FLCoordinator__AuditModelMismatch(round, hospital, revealed, modelHash);
        if (_auditorCount != 1) {
            // A committee member's report; with a single auditor the report is the decision
            // (`AuditResolved`).
            emit AuditReported(round, hospital, msg.sender, confidence, ece);
            bool complete;
            (complete, confidence, ece) = _collectReport(key, auditor, confidence, ece, round, hospital);
            if (!complete) return;
        }
        _resolveAudit(round, hospital, key, trustRecord, confidence, ece, state);
    }

    /// @notice Records the hash of the current round's ensemble prediction and closes the round.
    /// @dev Owner only; `participantCount` must equal the round's actual number of submissions
    /// (trust mode: reveals). Trust mode: this also closes the round's audit window; if no
    /// submission kept any weight, the round's pool goes back to the reserve.
    /// @param predictionHash Hash of the ensemble's predictions.
    /// @param participantCount Number of hospitals whose updates formed the ensemble.
    function recordEnsemblePrediction(bytes32 predictionHash, uint256 participantCount) external onlyOwner {
        uint256 state = _loadState();
        uint256 round = state & 0xffffffff;
        if (round == 0) revert FLCoordinator__NoActiveRound();
        if ((state >> _S_CLOSED_SHIFT) & 0xff != 0) {
            // Trust mode: `closeRound` closes a round without recording an ensemble.
            if (_trust && _roundRewards[round] & _R_RECORDED == 0) revert FLCoordinator__RoundClosed(round);
            revert FLCoordinator__EnsembleAlreadyRecorded(round);
        }
        if (participantCount == 0) revert FLCoordinator__ZeroParticipants();
        uint256 actual = (state >> _S_SUBMITTERS_SHIFT) & 0xffffff;
        if (participantCount != actual) {
            revert FLCoordinator__ParticipantCountMismatch(round, participantCount, actual);
        }
        uint256 low = _timestampLow((state >> _S_EPOCH_SHIFT) & 0xffffffff, _submissionKey(round, address(0)));
        if (_trust) {
            state = _closeRewards(round, state, (low << _R_TS_SHIFT) | _R_RECORDED);
        } else {
            _writeHeader(round, low, actual, _HEADER_RECORDED);
        }
        _storeState(state | (1 << _S_CLOSED_SHIFT));
        _predictionHashes[round] = predictionHash;
        emit EnsemblePredictionRecorded(round, predictionHash, participantCount);
    }

    /// @notice Closes the current round without an ensemble record (trust mode, owner only).
    /// @dev For a round nobody revealed in (an ensemble needs a participant) or one the owner
    /// gives up on, typically the last one: its audit window closes and its rewards become final
    /// as on `recordEnsemblePrediction`, and its pool returns to the reserve when no submission
    /// kept any weight. Its ensemble record stays empty; hospitals in it may then withdraw.
    function closeRound() external onlyOwner {
        _requireTrust();
        uint256 state = _loadState();
        uint256 round = _openRound(state);
        _storeState(_closeRewards(round, state, 0) | (1 << _S_CLOSED_SHIFT));
        emit RoundClosed(round);
    }

    // ================================================================== rewards and exit

    /// @notice Adds the wei sent to the reward reserve (trust mode, owner only). Each round takes
    /// `rewardPerRound` from it when it starts.
    function fundRewardPool() external payable onlyOwner {
        _requireTrust();
        uint256 state = _addReserve(_loadState(), msg.value);
        _storeState(state);
        emit RewardPoolFunded(msg.value, state >> _S_RESERVE_SHIFT);
    }

    /// @notice Sends wei of the reward reserve to `to` (trust mode, owner only). Only the
    /// reserve: never a stake, nor a pool already given to a round.
    /// @param to The recipient.
    /// @param amount Wei to take out of the reserve.
    function withdrawReserve(address payable to, uint256 amount) external onlyOwner {
        _requireTrust();
        if (to == address(0)) revert FLCoordinator__ZeroAddress();
        uint256 state = _loadState();
        uint256 reserve = state >> _S_RESERVE_SHIFT;
        if (amount > reserve) revert FLCoordinator__InsufficientReserve(amount, reserve);
        // amount <= reserve (checked above).
        unchecked {
            _storeState(state - (amount << _S_RESERVE_SHIFT));
        }
        emit ReserveWithdrawn(to, amount);
        Address.sendValue(to, amount);
    }

    /// @notice Leaves the deployment with the sender's stake (net of slashes) plus its rewards
    /// of every round it took part in (trust mode).
    /// @dev Allowed once, for a registered hospital that has not committed in the current round,
    /// or once that round is closed (all its rounds are then final). Rewards are computed here,
    /// round by round (gas linear in the hospital's last round). The hospital cannot commit
    /// afterwards.
    function withdraw() external {
        _requireTrust();
        HospitalRecord storage record = _hospitals[msg.sender];
        Hospital memory h = record.core;
        if (!h.registered) revert FLCoordinator__NotRegistered(msg.sender);
        if (h.exited) revert FLCoordinator__HospitalExited(msg.sender);
        uint256 state = _loadState();
        uint256 round = state & 0xffffffff;
        if (
            round != 0 && (state >> _S_CLOSED_SHIFT) & 0xff == 0
                && _modelHashes[_submissionKey(round, msg.sender)] != bytes32(0)
        ) revert FLCoordinator__WithdrawalDuringOpenRound(round, msg.sender);
        (uint256 rewards,) = _earnings(msg.sender, h);
        record.core.stake = 0;
        record.core.exited = true;
        emit HospitalWithdrew(msg.sender, h.stake, rewards);
        Address.sendValue(payable(msg.sender), h.stake + rewards);
    }

    // ================================================================== weights

    /// @notice The weight formula itself, for any tier and metrics.
    /// @dev `min(floor(capMul * confidence * (SCALE - ece) / SCALE^2) + min(500 * rounds, 2500), 15000)`
    /// with capMul 8000 / 10000 / 12000 for Weak / Medium / Strong.
    /// @param capacity The tier.
    /// @param confidence Fixed-point confidence (0..SCALE).
    /// @param ece Fixed-point ECE (0..SCALE).
    /// @param roundsParticipated Rounds taken part in.
    /// @return The weight in fixed point (0..MAX_WEIGHT).
    function calculateWeightPure(CapacityClass capacity, uint256 confidence, uint256 ece, uint256 roundsParticipated)
        public
        pure
        returns (uint256)
    {
        if (confidence > SCALE) revert FLCoordinator__ConfidenceOutOfRange(confidence);
        if (ece > SCALE) revert FLCoordinator__EceOutOfRange(ece);
        uint256 capMul = capacity == CapacityClass.Strong
            ? _CAP_MUL_STRONG
            : (capacity == CapacityClass.Medium ? _CAP_MUL_MEDIUM : _CAP_MUL_WEAK);
        uint256 bonus = roundsParticipated >= MAX_BONUS / BONUS_PER_ROUND
            ? MAX_BONUS
            : roundsParticipated * BONUS_PER_ROUND;
        // capMul * confidence * (SCALE - ece) <= 12000 * 10000 * 10000 and bonus <= 2500: no overflow.
        unchecked {
            uint256 weight = (capMul * confidence * (SCALE - ece)) / (SCALE * SCALE) + bonus;
            return weight < MAX_WEIGHT ? weight : MAX_WEIGHT;
        }
    }

    /// @notice A hospital's current weight, from its latest submitted metrics and its total
    /// rounds participated (trust mode: its latest audited metrics after a failed audit).
    /// @param hospital A registered hospital.
    /// @return The weight in fixed point.
    function calculateWeight(address hospital) external view returns (uint256) {
        Hospital memory h = _registered(hospital);
        return calculateWeightPure(h.capacity, h.confidence, h.ece, h.roundsParticipated);
    }

    /// @notice A hospital's weight for a past (or the current) round, from that round's
    /// submission.
    /// @dev Uses the confidence and ECE submitted in `round` and the hospital's rounds
    /// participated as of that round, counting `round` itself (the value `calculateWeight`
    /// returned right after that submission). The snapshot saturates at 63, above the 5 rounds
    /// at which the bonus saturates, so the weight is exact. Trust mode: zero after a failed
    /// audit.
    /// @param round The round number (1-based).
    /// @param hospital A registered hospital that submitted in `round`.
    /// @return The weight in fixed point.
    function calculateRoundWeight(uint256 round, address hospital) external view returns (uint256) {
        Hospital memory h = _registered(hospital);
        uint256 lane = _submissionLane(round, hospital, h.index);
        if (lane == 0) revert FLCoordinator__NoSubmission(round, hospital);
        if (_trust && (lane >> _T_STATUS_SHIFT) == uint256(AuditStatus.Failed)) return 0;
        return _laneWeight(h.capacity, lane);
    }

    /// @notice The exact split of a round pool by round weight, as the contract pays it.
    /// @dev Submissions in reveal order; a failed one weighs zero. With `S_i` the sum of the
    /// kept weights before submission i and `W` their total, submission i receives
    /// `floor(pool * (S_i + w_i) / W) - floor(pool * S_i / W)`: the shares telescope to exactly
    /// `pool` (no wei created or lost, each share within 1 wei of `pool * w_i / W`). When nothing
    /// keeps weight (`W == 0`) no share is paid and the pool goes back to the reserve
    /// (`unallocated`). Reverts on overflow: weights are at most `MAX_WEIGHT` on chain.
    /// @param pool The round's pool, wei.
    /// @param weights Claimed round weights in reveal order.
    /// @param failed Which of them failed their audit.
    /// @return rewards Each submission's reward.
    /// @return unallocated What returns to the reserve (`pool` when `W == 0`, else 0).
    function calculateRewardSplit(uint256 pool, uint256[] calldata weights, bool[] calldata failed)
        external
        pure
        returns (uint256[] memory rewards, uint256 unallocated)
    {
        if (weights.length != failed.length) revert FLCoordinator__LengthMismatch(weights.length, failed.length);
        uint256 total;
        uint256 failedTotal;
        for (uint256 i = 0; i < weights.length; ++i) {
            total += weights[i];
            if (failed[i]) failedTotal += weights[i];
        }
        rewards = new uint256[](weights.length);
        uint256 prefix;
        uint256 failedBefore;
        unallocated = pool;
        for (uint256 i = 0; i < weights.length; ++i) {
            if (failed[i]) {
                failedBefore += weights[i];
            } else {
                rewards[i] = _rewardShare(pool, prefix - failedBefore, weights[i], total - failedTotal);
                unallocated -= rewards[i];
            }
            prefix += weights[i];
        }
    }

    // ================================================================== views

    /// @notice The model type a tier must train.
    /// @param capacity The tier.
    /// @return The assigned model type (Weak -> Light, Medium -> Medium, Strong -> Heavy).
    function getModelType(CapacityClass capacity) external pure returns (ModelType) {
        return ModelType(uint8(capacity));
    }

    /// @notice Everything stored about a hospital; zeros for an unregistered address.
    /// @param hospital The account.
    /// @return name Hospital name.
    /// @return capacityClass Its tier.
    /// @return assignedModelType The model type of its tier.
    /// @return confidence Latest submitted confidence.
    /// @return ece Latest submitted ECE.
    /// @return isRegistered Whether the account is registered.
    /// @return pocBenchmarkHash The benchmark hash it registered with.
    /// @return roundsParticipated Rounds it submitted in.
    function getHospitalInfo(address hospital)
        external
        view
        returns (
            string memory name,
            CapacityClass capacityClass,
            ModelType assignedModelType,
            uint256 confidence,
            uint256 ece,
            bool isRegistered,
            bytes32 pocBenchmarkHash,
            uint256 roundsParticipated
        )
    {
        HospitalRecord storage record = _hospitals[hospital];
        Hospital memory h = record.core;
        return (
            record.name,
            h.capacity,
            ModelType(uint8(h.capacity)),
            h.confidence,
            h.ece,
            h.registered,
            record.pocBenchmarkHash,
            h.roundsParticipated
        );
    }

    /// @notice A round's ensemble record; zeros when none was recorded.
    /// @param round The round number.
    /// @return predictionHash Hash of the ensemble's predictions.
    /// @return participantCount Hospitals that formed the ensemble.
    /// @return timestamp Block timestamp of the record (full width: never wraps).
    function getEnsembleRecord(uint256 round)
        external
        view
        returns (bytes32 predictionHash, uint256 participantCount, uint256 timestamp)
    {
        uint256 low;
        if (_trust) {
            uint256 rewards = _roundRewards[round];
            if (rewards & _R_RECORDED == 0) return (bytes32(0), 0, 0);
            participantCount = (rewards >> _R_REVEALED_SHIFT) & _COUNT_MASK;
            low = (rewards >> _R_TS_SHIFT) & 0xffffffff;
        } else {
            uint256 header = _lanes[_laneKey(round, 0)];
            if (header & _HEADER_RECORDED == 0) return (bytes32(0), 0, 0);
            participantCount = (header >> _HEADER_COUNT_SHIFT) & _COUNT_MASK;
            low = (header >> _HEADER_TS_SHIFT) & 0xffffffff;
        }
        return (_predictionHashes[round], participantCount, _fullTimestamp(round, low, _submissionKey(round, address(0))));
    }

    /// @notice A hospital's submission in a round (trust mode: its reveal); zeros when it
    /// submitted nothing.
    /// @param round The round number.
    /// @param hospital The account.
    /// @return modelHash Submitted model hash.
    /// @return confidence Submitted confidence.
    /// @return ece Submitted ECE.
    /// @return timestamp Block timestamp of the submission (full width: never wraps).
    /// @return modelType Model type of the submission.
    function getRoundSubmission(uint256 round, address hospital)
        external
        view
        returns (bytes32 modelHash, uint256 confidence, uint256 ece, uint256 timestamp, ModelType modelType)
    {
        Hospital memory h = _hospitals[hospital].core;
        if (!h.registered) return (bytes32(0), 0, 0, 0, ModelType.Light);
        uint256 lane = _submissionLane(round, hospital, h.index);
        if (lane == 0) return (bytes32(0), 0, 0, 0, ModelType.Light);
        uint256 key = _submissionKey(round, hospital);
        return (
            _modelHashes[key],
            (lane >> _CONF_SHIFT) & _METRIC_MASK,
            (lane >> _ECE_SHIFT) & _METRIC_MASK,
            _fullTimestamp(round, lane & 0xffffffff, key),
            ModelType(uint8(h.capacity))
        );
    }

    /// @notice Number of registered hospitals.
    /// @return The count.
    function getHospitalCount() external view returns (uint256) {
        return _state.hospitalCount;
    }

    /// @notice Number of hospitals that submitted (trust mode: revealed) in a round.
    /// @param round The round number.
    /// @return The count (0 for rounds not started yet).
    function getRoundSubmitterCount(uint256 round) external view returns (uint256) {
        RoundState memory state = _state;
        if (round != 0 && round == state.round && !state.closed) return state.submitters;
        if (_trust) return (_roundRewards[round] >> _R_REVEALED_SHIFT) & _COUNT_MASK;
        return (_lanes[_laneKey(round, 0)] >> _HEADER_COUNT_SHIFT) & _COUNT_MASK;
    }

    /// @notice The current round number (0 before the first round).
    /// @return The round number.
    function currentRound() external view returns (uint256) {
        return _state.round;
    }

    /// @notice What the score field (`confidence`) of this deployment's submissions holds.
    function weightScore() external view returns (WeightScore) {
        return _weightScore;
    }

    /// @notice The deployment's trust parameters (as given, defaults resolved; zeros and the
    /// deployer in seed mode).
    /// @return enabled Trust mode.
    /// @return minStake Minimum stake to commit, wei.
    /// @return rewardPerRound Each round's pool, wei.
    /// @return auditTolerance Audit tolerance, fixed point.
    /// @return slashFraction Share of the stake slashed by a failed audit, fixed point.
    /// @return mediumMinThroughput Medium threshold, milli-samples per second.
    /// @return strongMinThroughput Strong threshold, milli-samples per second.
    /// @return verifier The verifier.
    /// @return auditors The audit committee.
    function getTrustConfig()
        external
        view
        returns (
            bool enabled,
            uint256 minStake,
            uint256 rewardPerRound,
            uint256 auditTolerance,
            uint256 slashFraction,
            uint256 mediumMinThroughput,
            uint256 strongMinThroughput,
            address verifier,
            address[] memory auditors
        )
    {
        auditors = new address[](_auditorCount);
        address[_MAX_AUDITORS] memory all = [_auditor0, _auditor1, _auditor2, _auditor3, _auditor4];
        for (uint256 i = 0; i < _auditorCount; ++i) {
            auditors[i] = all[i];
        }
        return (
            _trust,
            _minStake,
            _rewardPerRound,
            _auditTolerance,
            _slashFraction,
            _mediumMinThroughput,
            _strongMinThroughput,
            _verifier,
            auditors
        );
    }

    /// @notice The current round, its phase and whether it is closed.
    /// @return round The current round (0 before the first).
    /// @return phase Its phase (trust mode; always `Commit` in seed mode).
    /// @return closed Whether its ensemble was recorded.
    function getRoundPhase() external view returns (uint256 round, Phase phase, bool closed) {
        RoundState memory state = _state;
        return (state.round, state.phase, state.closed);
    }

    /// @notice The challenge pending for a hospital (zero when none).
    /// @param hospital The account.
    /// @return The challenge.
    function getChallenge(address hospital) external view returns (bytes32) {
        return _challenges[hospital];
    }

    /// @notice The audit of a hospital's submission in a round.
    /// @param round The round.
    /// @param hospital The account.
    /// @return status None (not decided), Passed or Failed.
    /// @return auditedConfidence The decided confidence (0 until decided).
    /// @return auditedEce The decided ECE (0 until decided).
    /// @return reports Reports received (committee mode; 1 once a single auditor decided).
    function getAudit(uint256 round, address hospital)
        external
        view
        returns (AuditStatus status, uint256 auditedConfidence, uint256 auditedEce, uint256 reports)
    {
        uint256 key = _submissionKey(round, hospital);
        uint256 trustRecord = _trustRecords[key];
        status = AuditStatus(trustRecord >> _T_STATUS_SHIFT);
        auditedConfidence = (trustRecord >> _T_AUDIT_CONF_SHIFT) & _METRIC_MASK;
        auditedEce = (trustRecord >> _T_AUDIT_ECE_SHIFT) & _METRIC_MASK;
        if (status != AuditStatus.None) {
            reports = _auditorCount;
        } else {
            uint256 mask = _auditReports[key] & 0x1f;
            for (; mask != 0; mask >>= 1) {
                reports += mask & 1;
            }
        }
    }

    /// @notice What a hospital staked, earned and lost in one round (trust mode), for result rows.
    /// @param round The round.
    /// @param hospital The account.
    /// @return stake Its stake when it revealed, wei (0 when it did not reveal).
    /// @return weight Its on-chain round weight (0 after a failed audit).
    /// @return reward Its share of the round's pool, wei (0 until the round is final).
    /// @return slashed Wei slashed by the round's audit.
    /// @return status The round's audit outcome.
    /// @return finalized Whether the round's audits and rewards are final.
    function getRoundSettlement(uint256 round, address hospital)
        external
        view
        returns (uint256 stake, uint256 weight, uint256 reward, uint256 slashed, AuditStatus status, bool finalized)
    {
        finalized = _finalized(round);
        Hospital memory h = _hospitals[hospital].core;
        uint256 trustRecord = _trustRecords[_submissionKey(round, hospital)];
        if (trustRecord == 0) return (0, 0, 0, 0, AuditStatus.None, finalized);
        stake = (trustRecord >> _T_STAKE_SHIFT) & _STAKE_MASK;
        status = AuditStatus(trustRecord >> _T_STATUS_SHIFT);
        (reward, slashed, weight) = _settlement(round, trustRecord, h.capacity);
    }

    /// @notice A trust-mode round's pool and weights.
    /// @param round The round.
    /// @return pool The round's pool, wei.
    /// @return totalWeight Sum of the revealed (claimed) round weights.
    /// @return failedWeight The part of it lost to failed audits.
    /// @return revealed Number of reveals.
    /// @return finalized Whether the round's audits and rewards are final.
    /// @return returnedToReserve Whether the pool went back to the reserve (no weight kept).
    function getRoundRewards(uint256 round)
        external
        view
        returns (
            uint256 pool,
            uint256 totalWeight,
            uint256 failedWeight,
            uint256 revealed,
            bool finalized,
            bool returnedToReserve
        )
    {
        RoundState memory state = _state;
        uint256 rewards = _roundRewards[round];
        finalized = _finalized(round);
        if (round != 0 && round == state.round && !finalized) {
            totalWeight = state.roundWeight;
            revealed = state.submitters;
        } else {
            totalWeight = rewards & _WEIGHT_SUM_MASK;
            revealed = (rewards >> _R_REVEALED_SHIFT) & _COUNT_MASK;
        }
        return (
            round != 0 && round <= state.round ? _rewardPerRound : 0,
            totalWeight,
            (rewards >> _R_FAILED_WEIGHT_SHIFT) & _WEIGHT_SUM_MASK,
            revealed,
            finalized,
            rewards & _R_RETURNED != 0
        );
    }

    /// @notice A hospital's account (trust mode): what it holds, lost, earned and may withdraw.
    /// @dev `withdrawable == stake + rewards` until it withdraws, where `stake` is what it
    /// deposited less `slashed`; rewards of a round count once the round is final.
    /// @param hospital The account.
    /// @return stake Current stake, wei (net of slashes; 0 after the withdrawal).
    /// @return slashed Total slashed, wei.
    /// @return rewards Total rewards of final rounds, wei.
    /// @return withdrawable What `withdraw` would pay now (0 after the withdrawal).
    /// @return exited Whether it withdrew.
    function getHospitalAccount(address hospital)
        external
        view
        returns (uint256 stake, uint256 slashed, uint256 rewards, uint256 withdrawable, bool exited)
    {
        Hospital memory h = _hospitals[hospital].core;
        (rewards, slashed) = _earnings(hospital, h);
        return (h.stake, slashed, rewards, h.exited ? 0 : h.stake + rewards, h.exited);
    }

    /// @notice Wei in the reward reserve (funded, not yet given to a round).
    /// @return The reserve.
    function rewardReserve() external view returns (uint256) {
        return _state.reserve;
    }

    // ================================================================== internals

    /// @dev Reverts unless this deployment runs trust mode.
    function _requireTrust() private view {
        if (!_trust) revert FLCoordinator__TrustModeOnly();
    }

    /// @dev Reverts for the zero address and registered hospitals.
    function _checkNewHospital(address hospital) private view {
        if (hospital == address(0)) revert FLCoordinator__ZeroAddress();
        if (_hospitals[hospital].core.registered) revert FLCoordinator__AlreadyRegistered(hospital);
    }

    /// @dev Reverts unless `signature` is `hospital`'s EIP-191 signature over `statement`.
    function _checkSigner(bytes32 statement, bytes calldata signature, address hospital) private pure {
        (address recovered, ECDSA.RecoverError err,) =
            ECDSA.tryRecoverCalldata(MessageHashUtils.toEthSignedMessageHash(statement), signature);
        if (err != ECDSA.RecoverError.NoError || recovered != hospital) {
            revert FLCoordinator__InvalidSignature(hospital, recovered);
        }
    }

    /// @dev Writes a new hospital (both modes).
    function _register(
        address hospital,
        string calldata name,
        CapacityClass capacity,
        bytes32 benchmarkHash,
        uint256 stake
    ) private {
        uint256 count = _state.hospitalCount;
        if (count >= MAX_HOSPITALS) revert FLCoordinator__TooManyHospitals();
        HospitalRecord storage record = _hospitals[hospital];
        record.core = Hospital({
            index: uint24(count),
            capacity: capacity,
            registered: true,
            lastRound: 0,
            roundsParticipated: 0,
            confidence: 0,
            ece: 0,
            stake: uint96(stake),
            exited: false
        });
        record.pocBenchmarkHash = benchmarkHash;
        record.name = name;
        // count < MAX_HOSPITALS (checked above), so count + 1 fits in 24 bits.
        unchecked {
            _state.hospitalCount = uint24(count + 1);
        }
        emit HospitalRegistered(hospital, name, capacity, benchmarkHash);
    }

    /// @dev The tier a verifier-measured throughput supports.
    function _tierOf(uint256 throughput) private view returns (CapacityClass) {
        if (throughput >= _strongMinThroughput) return CapacityClass.Strong;
        if (throughput >= _mediumMinThroughput) return CapacityClass.Medium;
        return CapacityClass.Weak;
    }

    /// @dev The sender's hospital slot and the round state (one load each; the bit offsets are
    /// the compiler's layout of `Hospital` and `RoundState`), after checking that the sender is
    /// registered and the round open.
    function _loadSubmitter(HospitalRecord storage record)
        private
        view
        returns (uint256 hospital, uint256 state, uint256 round)
    {
        assembly ("memory-safe") {
            hospital := sload(record.slot)
            state := sload(_state.slot)
        }
        if ((hospital >> _H_REGISTERED_SHIFT) & 0xff == 0) revert FLCoordinator__NotRegistered(msg.sender);
        round = _openRound(state);
    }

    /// @dev The current round, after checking it exists and is open.
    function _openRound(uint256 state) private pure returns (uint256 round) {
        round = state & 0xffffffff;
        if (round == 0) revert FLCoordinator__NoActiveRound();
        if ((state >> _S_CLOSED_SHIFT) & 0xff != 0) revert FLCoordinator__RoundClosed(round);
    }

    /// @dev Reverts unless the current round is in `phase`.
    function _requirePhase(uint256 state, uint256 round, Phase phase) private pure {
        Phase current = Phase((state >> _S_PHASE_SHIFT) & 0xff);
        if (current != phase) revert FLCoordinator__WrongPhase(round, phase, current);
    }

    /// @dev The seed's checks of a submission: metric ranges and the tier's model type.
    function _checkSubmission(uint256 hospital, uint256 confidence, uint256 ece, ModelType modelType) private pure {
        if (confidence > SCALE) revert FLCoordinator__ConfidenceOutOfRange(confidence);
        if (ece > SCALE) revert FLCoordinator__EceOutOfRange(ece);
        ModelType expected = ModelType((hospital >> _H_CAPACITY_SHIFT) & 0xff);
        if (modelType != expected) revert FLCoordinator__WrongModelType(expected, modelType);
    }

    /// @dev The hospital slot after a submission in `round` (lastRound, roundsParticipated,
    /// confidence and ece replaced; index, tier, registration and stake kept), and its new
    /// rounds participated.
    function _withSubmission(uint256 hospital, uint256 round, uint256 confidence, uint256 ece)
        private
        pure
        returns (uint256, uint256 rounds)
    {
        // roundsParticipated < round <= 2**32 - 1 (one submission per round): no overflow.
        unchecked {
            rounds = ((hospital >> _H_ROUNDS_SHIFT) & 0xffffffff) + 1;
        }
        hospital = (hospital & ~_H_SUBMISSION_MASK) | (round << _H_LAST_ROUND_SHIFT) | (rounds << _H_ROUNDS_SHIFT)
            | (confidence << _H_CONF_SHIFT) | (ece << _H_ECE_SHIFT);
        return (hospital, rounds);
    }

    /// @dev A submission's 66-bit lane (see the lane layout), its timestamp stamped now.
    function _lane(uint256 state, uint256 key, uint256 confidence, uint256 ece, uint256 rounds)
        private
        returns (uint256)
    {
        uint256 snapshot = rounds < _MAX_ROUNDS_SNAPSHOT ? rounds : _MAX_ROUNDS_SNAPSHOT;
        return _timestampLow((state >> _S_EPOCH_SHIFT) & 0xffffffff, key) | (confidence << _CONF_SHIFT)
            | (ece << _ECE_SHIFT) | (snapshot << _ROUNDS_SHIFT);
    }

    /// @dev The weight of a lane (or trust record) for a tier.
    function _laneWeight(CapacityClass capacity, uint256 lane) private pure returns (uint256) {
        return calculateWeightPure(
            capacity,
            (lane >> _CONF_SHIFT) & _METRIC_MASK,
            (lane >> _ECE_SHIFT) & _METRIC_MASK,
            (lane >> _ROUNDS_SHIFT) & _ROUNDS_MASK
        );
    }

    /// @dev The submission of hospital `index` in `round`: its lane (seed mode) or trust record;
    /// 0 when there is none.
    function _submissionLane(uint256 round, address hospital, uint256 index) private view returns (uint256) {
        if (_trust) return _trustRecords[_submissionKey(round, hospital)];
        return (_lanes[_laneKey(round, index)] >> _laneOffset(index)) & _LANE_MASK;
    }

    /// @dev The auditor's index in the committee, or revert.
    function _auditorIndex(address account) private view returns (uint256) {
        if (account == _auditor0) return 0;
        if (_auditorCount > 1) {
            if (account == _auditor1) return 1;
            if (account == _auditor2) return 2;
            if (_auditorCount > 3) {
                if (account == _auditor3) return 3;
                if (account == _auditor4) return 4;
            }
        }
        revert FLCoordinator__NotAuditor(account);
    }

    /// @dev Stores a committee member's report; once all are in, returns their medians.
    function _collectReport(
        uint256 key,
        uint256 auditor,
        uint256 confidence,
        uint256 ece,
        uint256 round,
        address hospital
    ) private returns (bool complete, uint256, uint256) {
        uint256 reports = _auditReports[key];
        if ((reports >> auditor) & 1 != 0) revert FLCoordinator__AlreadyAudited(round, hospital, msg.sender);
        uint256 offset = 8 + 28 * auditor;
        reports |= (1 << auditor) | (confidence << offset) | (ece << (offset + 14));
        _auditReports[key] = reports;
        uint256 count = _auditorCount;
        uint256[] memory confidences = new uint256[](count);
        uint256[] memory eces = new uint256[](count);
        for (uint256 i = 0; i < count; ++i) {
            if ((reports >> i) & 1 == 0) return (false, 0, 0);
            confidences[i] = (reports >> (8 + 28 * i)) & _METRIC_MASK;
            eces[i] = (reports >> (22 + 28 * i)) & _METRIC_MASK;
        }
        return (true, _median(confidences), _median(eces));
    }

    /// @dev The median of an odd-length list (sorted in place).
    function _median(uint256[] memory values) private pure returns (uint256) {
        for (uint256 i = 1; i < values.length; ++i) {
            uint256 value = values[i];
            uint256 j = i;
            while (j > 0 && values[j - 1] > value) {
                values[j] = values[j - 1];
                --j;
            }
            values[j] = value;
        }
        return values[values.length / 2];
    }

    /// @dev Decides an audit: records the outcome and, on a deviation, zeroes the round weight
    /// and slashes.
    function _resolveAudit(
        uint256 round,
        address hospital,
        uint256 key,
        uint256 trustRecord,
        uint256 confidence,
        uint256 ece,
        uint256 state
    ) private {
        bool passed = _distance(confidence, (trustRecord >> _CONF_SHIFT) & _METRIC_MASK) <= _auditTolerance
            && _distance(ece, (trustRecord >> _ECE_SHIFT) & _METRIC_MASK) <= _auditTolerance;
        trustRecord |= (confidence << _T_AUDIT_CONF_SHIFT) | (ece << _T_AUDIT_ECE_SHIFT)
            | (uint256(passed ? AuditStatus.Passed : AuditStatus.Failed) << _T_STATUS_SHIFT);
        _trustRecords[key] = trustRecord;
        uint256 slashed;
        if (!passed) slashed = _penalize(round, hospital, trustRecord, confidence, ece, state);
        emit AuditResolved(round, hospital, passed, confidence, ece, slashed);
    }

    /// @dev A failed audit: the claimed weight leaves the round (recorded in `_failedAudits`),
    /// the stake loses `slashFraction` of its value at the reveal (to the reserve), the round
    /// leaves the participation count and the latest metrics become the audited ones.
    function _penalize(
        uint256 round,
        address hospital,
        uint256 trustRecord,
        uint256 confidence,
        uint256 ece,
        uint256 state
    ) private returns (uint256 slashed) {
        Hospital storage h = _hospitals[hospital].core;
        uint256 stake = h.stake;
        slashed = _slashOf(trustRecord);
        // The stake only grows between a reveal and its audit (deposits; withdrawals wait for the
        // round to close), so a slash of at most the stake at the reveal is at most the stake.
        if (slashed > stake) revert FLCoordinator__SlashBeyondStake(slashed, stake);
        h.stake = uint96(stake - slashed);
        h.roundsParticipated -= 1; // >= 1: it revealed in this round
        h.confidence = uint16(confidence);
        h.ece = uint16(ece);
        uint256 weight = _laneWeight(h.capacity, trustRecord);
        uint256 rewards = _roundRewards[round];
        uint256 failedCount = (rewards >> _R_FAILED_COUNT_SHIFT) & _COUNT_MASK;
        _failedAudits[(round << 32) | failedCount] = ((trustRecord >> _T_POSITION_SHIFT) & _COUNT_MASK) | (weight << 24);
        // Failed weight <= revealed weight < 2^38 and failed audits <= reveals < 2^24: both stay
        // inside their fields.
        unchecked {
            _roundRewards[round] = rewards + (weight << _R_FAILED_WEIGHT_SHIFT) + (1 << _R_FAILED_COUNT_SHIFT);
        }
        if (slashed != 0) _storeState(_addReserve(state, slashed));
    }

    /// @dev The slash a failed audit takes: `slashFraction` of the stake as of the reveal.
    function _slashOf(uint256 trustRecord) private view returns (uint256) {
        return ((trustRecord >> _T_STAKE_SHIFT) & _STAKE_MASK) * _slashFraction / SCALE;
    }

    /// @dev Closes the current trust-mode round's rewards (`state` still holds it): moves its
    /// revealed weight and count into its reward record with `flags` and, when no submission kept
    /// any weight, returns its pool to the reserve (in the returned `state`).
    function _closeRewards(uint256 round, uint256 state, uint256 flags) private returns (uint256) {
        uint256 rewards = _roundRewards[round];
        uint256 weight = (state >> _S_WEIGHT_SHIFT) & _WEIGHT_SUM_MASK;
        flags |= weight | (((state >> _S_SUBMITTERS_SHIFT) & _COUNT_MASK) << _R_REVEALED_SHIFT);
        uint256 pool = _rewardPerRound;
        if (pool != 0 && weight == (rewards >> _R_FAILED_WEIGHT_SHIFT) & _WEIGHT_SUM_MASK) {
            flags |= _R_RETURNED;
            state = _addReserve(state, pool);
            emit RoundPoolReturned(round, pool);
        }
        if (flags != 0) _roundRewards[round] = rewards | flags;
        return state;
    }

    /// @dev Whether a round's audits and rewards are final (a later round started, or its
    /// ensemble was recorded).
    function _finalized(uint256 round) private view returns (bool) {
        RoundState memory state = _state;
        return round != 0 && (round < state.round || (round == state.round && state.closed));
    }

    /// @dev A hospital's reward, slash and round weight in one round, from its trust record.
    function _settlement(uint256 round, uint256 trustRecord, CapacityClass capacity)
        private
        view
        returns (uint256 reward, uint256 slashed, uint256 weight)
    {
        if (trustRecord >> _T_STATUS_SHIFT == uint256(AuditStatus.Failed)) return (0, _slashOf(trustRecord), 0);
        weight = _laneWeight(capacity, trustRecord);
        if (!_finalized(round)) return (0, 0, weight);
        uint256 rewards = _roundRewards[round];
        uint256 failedCount = (rewards >> _R_FAILED_COUNT_SHIFT) & _COUNT_MASK;
        uint256 position = (trustRecord >> _T_POSITION_SHIFT) & _COUNT_MASK;
        uint256 failedBefore;
        for (uint256 i = 0; i < failedCount; ++i) {
            uint256 entry = _failedAudits[(round << 32) | i];
            if (entry & _COUNT_MASK < position) failedBefore += entry >> 24;
        }
        reward = _rewardShare(
            _rewardPerRound,
            ((trustRecord >> _T_PREFIX_SHIFT) & _WEIGHT_SUM_MASK) - failedBefore,
            weight,
            (rewards & _WEIGHT_SUM_MASK) - ((rewards >> _R_FAILED_WEIGHT_SHIFT) & _WEIGHT_SUM_MASK)
        );
    }

    /// @dev `floor(pool * (start + weight) / total) - floor(pool * start / total)` (0 when
    /// `total` is 0): the share of the weight interval `[start, start + weight)` of `total`.
    function _rewardShare(uint256 pool, uint256 start, uint256 weight, uint256 total) private pure returns (uint256) {
        if (total == 0) return 0;
        return pool * (start + weight) / total - pool * start / total;
    }

    /// @dev A hospital's rewards (final rounds) and slashes over every round it revealed in.
    function _earnings(address hospital, Hospital memory h) private view returns (uint256 rewards, uint256 slashed) {
        for (uint256 round = 1; round <= h.lastRound; ++round) {
            uint256 trustRecord = _trustRecords[_submissionKey(round, hospital)];
            if (trustRecord == 0) continue;
            (uint256 reward, uint256 slash,) = _settlement(round, trustRecord, h.capacity);
            rewards += reward;
            slashed += slash;
        }
    }

    /// @dev `state` with `amount` more wei in the reserve.
    function _addReserve(uint256 state, uint256 amount) private pure returns (uint256) {
        uint256 reserve = (state >> _S_RESERVE_SHIFT) + amount;
        if (reserve > _MAX_RESERVE) revert FLCoordinator__ReserveOverflow(reserve);
        return (state & ((1 << _S_RESERVE_SHIFT) - 1)) | (reserve << _S_RESERVE_SHIFT);
    }

    /// @dev |a - b|.
    function _distance(uint256 a, uint256 b) private pure returns (uint256) {
        return a > b ? a - b : b - a;
    }

    /// @dev The registered hospital's slot, or revert.
    function _registered(address hospital) private view returns (Hospital memory h) {
        h = _hospitals[hospital].core;
        if (!h.registered) revert FLCoordinator__NotRegistered(hospital);
    }

    /// @dev Key of a hospital's model hash (and trust record) in a round.
    function _submissionKey(uint256 round, address hospital) private pure returns (uint256) {
        return (round << 160) | uint256(uint160(hospital));
    }

    /// @dev Key of the lane slot holding hospital `index` in `round`.
    function _laneKey(uint256 round, uint256 index) private pure returns (uint256) {
        return (round << 32) | (index / _LANES_PER_SLOT);
    }

    /// @dev Bit offset of hospital `index`'s lane inside its slot.
    function _laneOffset(uint256 index) private pure returns (uint256) {
        return (index % _LANES_PER_SLOT) * _LANE_BITS;
    }

    /// @dev Stores the round header (low bits of the ensemble timestamp, submitter count, the
    /// recorded flag) in lane slot 0.
    function _writeHeader(uint256 round, uint256 low, uint256 submitters, uint256 recorded) private {
        uint256 key = _laneKey(round, 0);
        _lanes[key] = (_lanes[key] & ~_HEADER_MASK) | (low << _HEADER_TS_SHIFT) | (submitters << _HEADER_COUNT_SHIFT)
            | recorded;
    }

    /// @dev The packed `RoundState` word (slot 2).
    function _loadState() private view returns (uint256 state) {
        assembly ("memory-safe") {
            state := sload(_state.slot)
        }
    }

    /// @dev Stores the packed `RoundState` word (slot 2).
    function _storeState(uint256 state) private {
        assembly ("memory-safe") {
            sstore(_state.slot, state)
        }
    }

    /// @dev The low 32 bits of `block.timestamp`, to be stored; when the block is in another epoch
    /// than `epoch` (the current round's start), the full timestamp is also kept under `key`.
    function _timestampLow(uint256 epoch, uint256 key) private returns (uint256) {
        if (block.timestamp >> 32 != epoch) {
            _fullTimestamps[key] = block.timestamp;
        }
        return block.timestamp & 0xffffffff;
    }

    /// @dev The timestamp stored as `low` for `key` in `round`: the full one when one was kept,
    /// else `low` in the epoch of the round's start.
    function _fullTimestamp(uint256 round, uint256 low, uint256 key) private view returns (uint256) {
        uint256 full = _fullTimestamps[key];
        if (full != 0) return full;
        return (_epochOf(round) << 32) | low;
    }

    /// @dev The timestamp epoch (`block.timestamp >> 32`) in which `round` started: the last entry
    /// of `_epochLog` whose first round is at most `round`, else the deployment's.
    function _epochOf(uint256 round) private view returns (uint256) {
        uint256 low = 0;
        uint256 high = _epochLog.length;
        while (low < high) {
            uint256 mid = (low + high) / 2;
            if (_epochLog[mid] >> 32 <= round) low = mid + 1;
            else high = mid;
        }
        return low == 0 ? _deployEpoch : _epochLog[low - 1] & 0xffffffff;
    }
}
