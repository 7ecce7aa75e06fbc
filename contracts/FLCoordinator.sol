// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";

/// @title FLCoordinator
/// @notice Coordinates capacity-aware federated ensemble learning: hospitals register with a
/// signed Proof of Capacity, submit one model update per round (model hash plus self-reported
/// confidence and expected calibration error), and the owner records the hash of each round's
/// weighted ensemble prediction. Ensemble weights are computed on-chain in fixed point.
/// @dev Storage layout (every operation touches a constant number of slots):
/// - slot 0: `Ownable._owner`; slot 1: `Ownable2Step._pendingOwner`; slot 2: the round state
///   (`RoundState`: current round, hospital count, this round's submitter count, closed flag,
///   the round's timestamp epoch and a deployment marker).
/// - one `Hospital` slot per hospital (registration data and its latest metrics), plus its
///   benchmark hash and name, written once at registration.
/// - per round and hospital: the model hash (one slot) and a 66-bit "lane" holding confidence,
///   ECE, the participation snapshot and the timestamp. Lanes are packed three to a slot by
///   registration index (`index / 3` picks the slot, `index % 3` the lane), so only the first of
///   three hospitals to submit in a round pays for a fresh slot.
/// - per round: the prediction hash (one slot) and a header stored in the top 58 bits of the
///   round's lane slot 0 (ensemble timestamp, the round's final submitter count, recorded flag).
/// Timestamps never wrap: a lane or header keeps the low 32 bits of `block.timestamp`; the high
/// bits (the "epoch", which changes once every 2^32 seconds, ~136 years) are those of the round's
/// start, kept once per epoch change in `_epochLog`. A submission or ensemble whose block falls
/// in another epoch than its round's start (a round open across a multiple of 2^32 seconds)
/// also keeps its full timestamp in `_fullTimestamps`. Steady rounds pay nothing for this.
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

    uint256 private constant _CAP_MUL_WEAK = 8_000;
    uint256 private constant _CAP_MUL_MEDIUM = 10_000;
    uint256 private constant _CAP_MUL_STRONG = 12_000;

    // Lane layout (66 bits, three lanes per slot at bit offsets 0, 66 and 132):
    // [0, 32) submission timestamp, [32, 46) confidence, [46, 60) ece,
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
    uint256 private constant _HEADER_COUNT_MASK = (1 << 24) - 1;
    uint256 private constant _HEADER_RECORDED = 1 << 254;
    uint256 private constant _HEADER_MASK = ((1 << 58) - 1) << 198;

    // Bit offsets and masks of the `RoundState` fields inside slot 2 (as laid out by the compiler;
    // the round is at offset 0).
    uint256 private constant _S_COUNT_SHIFT = 32;
    uint256 private constant _S_SUBMITTERS_SHIFT = 56;
    uint256 private constant _S_CLOSED_SHIFT = 80;
    uint256 private constant _S_EPOCH_SHIFT = 96;
    uint256 private constant _S_ROUND_MASK = 0xffffffff;
    uint256 private constant _S_SUBMITTERS_MASK = 0xffffff << 56;
    uint256 private constant _S_CLOSED_MASK = 0xff << 80;
    uint256 private constant _S_EPOCH_MASK = 0xffffffff << 96;
    // Bit offsets of the `Hospital` fields inside its slot (as laid out by the compiler).
    uint256 private constant _H_CAPACITY_SHIFT = 24;
    uint256 private constant _H_REGISTERED_SHIFT = 32;
    uint256 private constant _H_LAST_ROUND_SHIFT = 40;
    uint256 private constant _H_ROUNDS_SHIFT = 72;
    uint256 private constant _H_CONF_SHIFT = 104;
    uint256 private constant _H_ECE_SHIFT = 120;

    /// @dev One storage slot per hospital: registration data and its latest submission.
    struct Hospital {
        uint24 index;
        CapacityClass capacity;
        bool registered;
        uint32 lastRound;
        uint32 roundsParticipated;
        uint16 confidence;
        uint16 ece;
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
        uint24 submitters; // submissions in the current round
        bool closed; // the current round's ensemble was recorded
        // Set at deployment and never cleared: it keeps the slot non-zero, so the first
        // registration pays for an update of the slot, not a fresh write.
        bool deployed;
        uint32 epoch; // block.timestamp >> 32 when the current round started
    }

    RoundState private _state;
    /// @dev Epoch changes, oldest first: `firstRound << 32 | epoch` for each round that started in
    /// another epoch than the round before it. Rounds before the first entry are in `_deployEpoch`.
    uint64[] private _epochLog;
    uint256 private immutable _deployEpoch;

    mapping(address hospital => HospitalRecord) private _hospitals;
    mapping(uint256 submissionKey => bytes32) private _modelHashes;
    mapping(uint256 laneKey => uint256) private _lanes;
    mapping(uint256 round => bytes32) private _predictionHashes;
    /// @dev Full timestamps of submissions (by submission key) and ensembles (by the key of round
    /// and the zero address) made in another epoch than their round's start.
    mapping(uint256 key => uint256) private _fullTimestamps;

    /// @notice A hospital was registered with a verified Proof of Capacity.
    event HospitalRegistered(
        address indexed hospital, string name, CapacityClass capacityClass, bytes32 pocBenchmarkHash
    );
    /// @notice A new round was opened.
    event RoundStarted(uint256 indexed round);
    /// @notice A hospital's update for a round was accepted.
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

    /// @notice Deploys the coordinator; the deployer becomes the owner. Ownership moves in two
    /// steps (`transferOwnership`, then `acceptOwnership` by the new owner).
    constructor() Ownable(msg.sender) {
        uint256 epoch = block.timestamp >> 32;
        _deployEpoch = epoch;
        _state = RoundState({
            round: 0, hospitalCount: 0, submitters: 0, closed: false, deployed: true, epoch: uint32(epoch)
        });
    }

    /// @notice Registers a hospital after verifying its Proof-of-Capacity signature.
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
        if (hospital == address(0)) revert FLCoordinator__ZeroAddress();
        HospitalRecord storage record = _hospitals[hospital];
        if (record.core.registered) revert FLCoordinator__AlreadyRegistered(hospital);
        bytes32 digest = MessageHashUtils.toEthSignedMessageHash(
            keccak256(
                abi.encode(
                    address(this), block.chainid, hospital, keccak256(bytes(name)), uint8(capacity), benchmarkHash
                )
            )
        );
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(digest, signature);
        if (err != ECDSA.RecoverError.NoError || recovered != hospital) {
            revert FLCoordinator__InvalidSignature(hospital, recovered);
        }
        uint256 count = _state.hospitalCount;
        if (count >= MAX_HOSPITALS) revert FLCoordinator__TooManyHospitals();

        record.core = Hospital({
            index: uint24(count),
            capacity: capacity,
            registered: true,
            lastRound: 0,
            roundsParticipated: 0,
            confidence: 0,
            ece: 0
        });
        record.pocBenchmarkHash = benchmarkHash;
        record.name = name;
        // count < MAX_HOSPITALS (checked above), so count + 1 fits in 24 bits.
        unchecked {
            _state.hospitalCount = uint24(count + 1);
        }
        emit HospitalRegistered(hospital, name, capacity, benchmarkHash);
    }

    /// @notice Opens the next round. Owner only; needs at least one registered hospital.
    /// @dev If the previous round was never closed by an ensemble record, its submitter count is
    /// archived into its round header so `getRoundSubmitterCount` keeps answering for it. A round
    /// starting in another timestamp epoch (2^32 seconds) than the round before it appends the
    /// epoch to `_epochLog` (once every ~136 years).
    function startNewRound() external onlyOwner {
        uint256 state = _loadState();
        if ((state >> _S_COUNT_SHIFT) & 0xffffff == 0) revert FLCoordinator__NoHospitals();
        uint256 previous = state & 0xffffffff;
        uint256 submitters = (state >> _S_SUBMITTERS_SHIFT) & 0xffffff;
        if (submitters != 0 && (state >> _S_CLOSED_SHIFT) & 0xff == 0) {
            _writeHeader(previous, 0, submitters, 0);
        }
        uint256 round = uint256(uint32(previous) + 1); // checked: reverts after 2**32 - 1 rounds
        // New round: no submitters, not closed.
        state = (state & ~(_S_ROUND_MASK | _S_SUBMITTERS_MASK | _S_CLOSED_MASK)) | round;
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

    /// @notice Submits the sender's model update for the current round.
    /// @dev Registered hospitals only (msg.sender), once per round, while the round is open.
    /// @param modelHash Hash of the trained model.
    /// @param confidence Mean max-softmax on the hospital's validation data, fixed point (0..SCALE).
    /// @param ece Expected calibration error, fixed point (0..SCALE).
    /// @param modelType Model family trained; must be the one assigned to the hospital's tier.
    function submitUpdate(bytes32 modelHash, uint256 confidence, uint256 ece, ModelType modelType) external {
        // The hot path reads and writes the two packed words it needs directly (one load and one
        // store each); the bit offsets are the compiler's layout of slot 1 and of `Hospital`.
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
        uint256 index = hospital & 0xffffff;
        // roundsParticipated < round <= 2**32 - 1 (one submission per round) and the submitter
        // count stays below the hospital count (< 2**24), so neither addition overflows its field.
        unchecked {
            rounds = ((hospital >> _H_ROUNDS_SHIFT) & 0xffffffff) + 1;
            state += 1 << _S_SUBMITTERS_SHIFT;
        }
        // Keep index, capacity and registered (the low 40 bits); replace lastRound,
        // roundsParticipated, confidence and ece.
        hospital = (hospital & 0xffffffffff) | (round << _H_LAST_ROUND_SHIFT) | (rounds << _H_ROUNDS_SHIFT)
            | (confidence << _H_CONF_SHIFT) | (ece << _H_ECE_SHIFT);
        assembly ("memory-safe") {
            sstore(record.slot, hospital)
            sstore(_state.slot, state)
        }
        uint256 key = _submissionKey(round, msg.sender);
        _modelHashes[key] = modelHash;

        uint256 snapshot = rounds < _MAX_ROUNDS_SNAPSHOT ? rounds : _MAX_ROUNDS_SNAPSHOT;
        uint256 lane = _timestampLow((state >> _S_EPOCH_SHIFT) & 0xffffffff, key) | (confidence << _CONF_SHIFT) | (ece << _ECE_SHIFT)
            | (snapshot << _ROUNDS_SHIFT);
        _lanes[_laneKey(round, index)] |= lane << _laneOffset(index);
        emit UpdateSubmitted(round, msg.sender, modelHash, confidence, ece, modelType);
    }

    /// @notice Records the hash of the current round's ensemble prediction and closes the round.
    /// @dev Owner only; `participantCount` must equal the round's actual number of submissions.
    /// @param predictionHash Hash of the ensemble's predictions.
    /// @param participantCount Number of hospitals whose updates formed the ensemble.
    function recordEnsemblePrediction(bytes32 predictionHash, uint256 participantCount) external onlyOwner {
        uint256 state = _loadState();
        uint256 round = state & 0xffffffff;
        if (round == 0) revert FLCoordinator__NoActiveRound();
        if ((state >> _S_CLOSED_SHIFT) & 0xff != 0) revert FLCoordinator__EnsembleAlreadyRecorded(round);
        if (participantCount == 0) revert FLCoordinator__ZeroParticipants();
        uint256 actual = (state >> _S_SUBMITTERS_SHIFT) & 0xffffff;
        if (participantCount != actual) {
            revert FLCoordinator__ParticipantCountMismatch(round, participantCount, actual);
        }
        _storeState(state | (1 << _S_CLOSED_SHIFT));
        _predictionHashes[round] = predictionHash;
        uint256 low = _timestampLow((state >> _S_EPOCH_SHIFT) & 0xffffffff, _submissionKey(round, address(0)));
        _writeHeader(round, low, actual, _HEADER_RECORDED);
        emit EnsemblePredictionRecorded(round, predictionHash, participantCount);
    }

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
    /// rounds participated.
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
    /// at which the bonus saturates, so the weight is exact.
    /// @param round The round number (1-based).
    /// @param hospital A registered hospital that submitted in `round`.
    /// @return The weight in fixed point.
    function calculateRoundWeight(uint256 round, address hospital) external view returns (uint256) {
        Hospital memory h = _registered(hospital);
        uint256 lane = _readLane(round, h.index);
        if (lane == 0) revert FLCoordinator__NoSubmission(round, hospital);
        return calculateWeightPure(
            h.capacity,
            (lane >> _CONF_SHIFT) & _METRIC_MASK,
            (lane >> _ECE_SHIFT) & _METRIC_MASK,
            (lane >> _ROUNDS_SHIFT) & _ROUNDS_MASK
        );
    }

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
        uint256 header = _lanes[_laneKey(round, 0)];
        if (header & _HEADER_RECORDED == 0) return (bytes32(0), 0, 0);
        uint256 low = (header >> _HEADER_TS_SHIFT) & 0xffffffff;
        return (
            _predictionHashes[round],
            (header >> _HEADER_COUNT_SHIFT) & _HEADER_COUNT_MASK,
            _fullTimestamp(round, low, _submissionKey(round, address(0)))
        );
    }

    /// @notice A hospital's submission in a round; zeros when it submitted nothing.
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
        uint256 lane = _readLane(round, h.index);
        if (lane == 0) return (bytes32(0), 0, 0, 0, ModelType.Light);
        return (
            _modelHashes[_submissionKey(round, hospital)],
            (lane >> _CONF_SHIFT) & _METRIC_MASK,
            (lane >> _ECE_SHIFT) & _METRIC_MASK,
            _fullTimestamp(round, lane & 0xffffffff, _submissionKey(round, hospital)),
            ModelType(uint8(h.capacity))
        );
    }

    /// @notice Number of registered hospitals.
    /// @return The count.
    function getHospitalCount() external view returns (uint256) {
        return _state.hospitalCount;
    }

    /// @notice Number of hospitals that submitted in a round.
    /// @param round The round number.
    /// @return The count (0 for rounds not started yet).
    function getRoundSubmitterCount(uint256 round) external view returns (uint256) {
        RoundState memory state = _state;
        if (round != 0 && round == state.round && !state.closed) return state.submitters;
        return (_lanes[_laneKey(round, 0)] >> _HEADER_COUNT_SHIFT) & _HEADER_COUNT_MASK;
    }

    /// @notice The current round number (0 before the first round).
    /// @return The round number.
    function currentRound() external view returns (uint256) {
        return _state.round;
    }

    /// @dev The registered hospital's slot, or revert.
    function _registered(address hospital) private view returns (Hospital memory h) {
        h = _hospitals[hospital].core;
        if (!h.registered) revert FLCoordinator__NotRegistered(hospital);
    }

    /// @dev Key of a hospital's model hash in a round.
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

    /// @dev The 66-bit lane of hospital `index` in `round` (0 when it did not submit).
    function _readLane(uint256 round, uint256 index) private view returns (uint256) {
        return (_lanes[_laneKey(round, index)] >> _laneOffset(index)) & _LANE_MASK;
    }

    /// @dev Stores the round header (low bits of the ensemble timestamp, submitter count, the
    /// recorded flag) in lane slot 0.
    function _writeHeader(uint256 round, uint256 low, uint256 submitters, uint256 recorded) private {
        uint256 key = _laneKey(round, 0);
        _lanes[key] = (_lanes[key] & ~_HEADER_MASK) | (low << _HEADER_TS_SHIFT)
            | (submitters << _HEADER_COUNT_SHIFT) | recorded;
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
